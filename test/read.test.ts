// `segment-endpoint read` and readStore: every stored line in order across days and workers, whole
// lines only, following (the endpoint writing, a new day's file), a checkpoint that survives kill -9,
// bad invocations, and stdout closing early or draining slowly.
import assert from 'node:assert/strict';
import { constants } from 'node:buffer';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { readMain } from '../src/read/command.ts';
import { readStore, type StoredLine } from '../src/read/store-reader.ts';
import { CLI_SOURCE, cleanEnv, ROOT, tempDirs, trackEvent, waitUntil } from './helpers.ts';
import { cleanup, type Endpoint, load, startEndpoint, stopCleanly, tlsFlags } from './reliability/harness.ts';

const tempDir = tempDirs('read');

/** A stored line of the shape the file store writes; `pad` bytes of padding make it longer. */
function stored(type: string, id: string, pad = 0): string {
  const event = { type, messageId: id, ...(pad > 0 && { properties: { pad: 'x'.repeat(pad) } }) };
  return JSON.stringify({ receivedAt: '2026-11-30T12:00:00.000Z', source: 'a1b2c3d4', settings: {}, event });
}

/** Appends `lines` (each with its newline) and then `tail` (no newline: a line being written). */
function append(dir: string, name: string, lines: readonly string[], tail = ''): void {
  appendFileSync(join(dir, name), lines.map((line) => `${line}\n`).join('') + tail);
}

interface Run {
  readonly child: ReturnType<typeof spawn>;
  stdout(): string;
  stderr(): string;
  /** The exit code (-1 for a signal) once stdout and stderr are closed too: all output is in. */
  readonly closed: Promise<number>;
}

/** `segment-endpoint read ARGS`, spawned from source. */
function spawnRead(args: readonly string[]): Run {
  const child = spawn(process.execPath, [...CLI_SOURCE, 'read', ...args], { cwd: ROOT, env: cleanEnv() });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const closed = new Promise<number>((done) => child.on('close', (code) => done(code ?? -1)));
  return { child, stdout: () => stdout, stderr: () => stderr, closed };
}

async function runRead(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const run = spawnRead(args);
  const code = await run.closed;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

const linesOf = (text: string) => text.split('\n').filter((line) => line !== '');

async function collect(lines: AsyncIterable<StoredLine>): Promise<StoredLine[]> {
  const all: StoredLine[] = [];
  for await (const line of lines) all.push(line);
  return all;
}

/**
 * A follow's lines one at a time: `next(ms)` is the next line, or 'nothing' if none comes within `ms` (the
 * line asked for is then the next one given: a request is never lost).
 */
function follower(it: AsyncIterator<StoredLine>) {
  let pending: Promise<IteratorResult<StoredLine>> | undefined;
  const next = async (ms: number): Promise<StoredLine | 'nothing'> => {
    pending ??= it.next();
    let timer: NodeJS.Timeout | undefined;
    const nothing = new Promise<'nothing'>((done) => {
      timer = setTimeout(done, ms, 'nothing');
    });
    const result = await Promise.race([pending, nothing]).finally(() => clearTimeout(timer));
    if (result === 'nothing') return result;
    pending = undefined;
    return result.done ? assert.fail('the follow ended') : result.value;
  };
  /** The next `n` lines' text, each within `ms`. */
  const take = async (n: number, ms = 5000): Promise<string[]> => {
    const texts: string[] = [];
    while (texts.length < n) {
      const line = await next(ms);
      assert.notEqual(line, 'nothing', `line ${texts.length + 1} of ${n} came within ${ms} ms`);
      texts.push((line as StoredLine).text);
    }
    return texts;
  };
  return { next, take };
}

/** Two days, two workers each (and a single process's file): the lines in reading order. */
function twoDays(dir: string): string[] {
  const files: Array<[string, string[]]> = [
    ['events-2026-11-29-w1.ndjson', [stored('track', 'a1'), stored('identify', 'a2')]],
    ['events-2026-11-29-w2.ndjson', [stored('page', 'b1'), stored('track', 'b2')]],
    ['events-2026-11-30.ndjson', [stored('group', 'c1')]],
    ['events-2026-11-30-w1.ndjson', [stored('track', 'd1')]],
    ['events-2026-11-30-w2.ndjson', [stored('alias', 'e1'), stored('track', 'e2', 600 * 1024)]],
    ['events-2026-11-30-w10.ndjson', [stored('screen', 'f1')]],
  ];
  for (const [name, lines] of files) append(dir, name, lines, name.endsWith('w2.ndjson') ? '{"receiv' : '');
  // Never read: a torn fragment set aside, another name, a checkpoint.
  append(dir, 'events-2026-11-29-w1.ndjson.torn', [stored('track', 'torn')]);
  append(dir, 'notes.ndjson', [stored('track', 'other')]);
  append(dir, 'events-2026-11-30.ndjson.tmp', [stored('track', 'temp')]);
  return files.flatMap(([, lines]) => lines);
}

describe('segment-endpoint read: what is stored', () => {
  test('prints every line in order across two days and their worker files; --type keeps those types', async () => {
    const dir = tempDir();
    const expected = twoDays(dir);
    const all = await runRead(['--out', dir]);
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stderr, '');
    assert.equal(all.stdout, expected.map((line) => `${line}\n`).join(''), 'byte for byte, in order');

    const some = await runRead(['--out', dir, '--type', 'track', '--type', 'PAGE']);
    assert.equal(some.code, 0, some.stderr);
    const ids = linesOf(some.stdout).map((line) => JSON.parse(line).event.messageId);
    assert.deepEqual(ids, ['a1', 'b1', 'b2', 'd1', 'e2']);
  });

  test('readStore gives each line with its file and byte range; a type in any casing is its type', async () => {
    const dir = tempDir();
    const casing = JSON.stringify({
      receivedAt: 'x',
      source: 's',
      settings: {},
      event: { Type: 'Identify' },
    });
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'm1'), casing, 'not json']);
    const lines = await collect(readStore(dir));
    assert.deepEqual(
      lines.map((l) => [l.file, l.offset, l.end, l.type]),
      [
        ['events-2026-11-30.ndjson', 0, stored('track', 'm1').length + 1, 'track'],
        ['events-2026-11-30.ndjson', lines[1]?.offset, lines[2]?.offset, 'identify'],
        [
          'events-2026-11-30.ndjson',
          lines[2]?.offset,
          statSync(join(dir, lines[0]?.file ?? '')).size,
          undefined,
        ],
      ],
    );
    assert.equal(lines[0]?.record.event.messageId, 'm1');
    assert.throws(() => lines[2]?.record, SyntaxError);
    assert.throws(() => readStore(dir, { types: ['purchase'] }), RangeError);
    assert.throws(() => readStore(dir, { pollMs: 0 }), RangeError);
    const identifies = await collect(readStore(dir, { types: ['identify'] }));
    assert.deepEqual(
      identifies.map((l) => l.text),
      [casing],
    );
  });

  test('a last line without its newline is not given; once completed it is (following)', async () => {
    const dir = tempDir();
    const name = 'events-2026-11-30-w1.ndjson';
    const long = stored('track', 'long', 700 * 1024); // longer than any one read
    append(dir, name, [stored('track', 'm1')], long.slice(0, 300 * 1024));
    const stop = new AbortController();
    const it = readStore(dir, { follow: true, pollMs: 20, signal: stop.signal });
    const follow = follower(it);
    try {
      assert.deepEqual(await follow.take(1), [stored('track', 'm1')]);
      assert.equal(await follow.next(300), 'nothing', 'the partial line is not given');
      append(dir, name, [], long.slice(300 * 1024, 500 * 1024));
      assert.equal(await follow.next(100), 'nothing', 'nor once longer');
      append(dir, name, [long.slice(500 * 1024)]);
      assert.deepEqual(await follow.take(1), [long], 'the whole line, assembled from several reads');
    } finally {
      stop.abort();
      await it.return();
    }
  });
});

describe('readStore: following and the checkpoint', () => {
  test('a new day is picked up when its file appears, after the day before; late lines of that day too', async () => {
    const dir = tempDir();
    append(dir, 'events-2026-11-30-w1.ndjson', [stored('track', 'd1-w1')]);
    append(dir, 'events-2026-11-30-w2.ndjson', [stored('track', 'd1-w2')]);
    const stop = new AbortController();
    const it = readStore(dir, { follow: true, pollMs: 20, signal: stop.signal });
    const follow = follower(it);
    const id = (text: string) => JSON.parse(text).event.messageId;
    try {
      assert.deepEqual((await follow.take(2)).map(id), ['d1-w1', 'd1-w2']);
      assert.equal(await follow.next(100), 'nothing');
      // Midnight (UTC) as the store sees it: worker 2 opens the next day's file; worker 1 still adds a line
      // received before midnight to its file of the day before.
      append(dir, 'events-2026-12-01-w2.ndjson', [stored('track', 'd2-w2')]);
      append(dir, 'events-2026-11-30-w1.ndjson', [stored('track', 'd1-w1-late')]);
      assert.deepEqual((await follow.take(2)).map(id), ['d1-w1-late', 'd2-w2'], 'a pass reads days in order');
      append(dir, 'events-2026-12-01-w1.ndjson', [stored('track', 'd2-w1')]);
      assert.deepEqual((await follow.take(1)).map(id), ['d2-w1']);
    } finally {
      stop.abort();
      await it.return();
    }
  });

  test('a line counts as done once the next is asked for; a loop left early gives it again', async () => {
    const dir = tempDir();
    const checkpoint = join(dir, 'reader.checkpoint');
    const lines = ['a', 'b', 'c', 'd'].map((id) => stored('track', id));
    append(dir, 'events-2026-11-30.ndjson', lines);
    for await (const line of readStore(dir, { checkpoint })) {
      if (line.text === lines[1]) break; // handling b failed
    }
    const saved = JSON.parse(readFileSync(checkpoint, 'utf8'));
    assert.equal(saved.files['events-2026-11-30.ndjson'].offset, (lines[0] as string).length + 1);
    assert.deepEqual(
      (await collect(readStore(dir, { checkpoint }))).map((l) => l.text),
      lines.slice(1),
      'b again, then the rest',
    );
    assert.deepEqual(await collect(readStore(dir, { checkpoint })), [], 'all done: nothing again');
    // A file cut back below the position (a refused write cut off, then others written) is read again.
    truncateSync(join(dir, 'events-2026-11-30.ndjson'), 0);
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'e')]);
    assert.deepEqual(
      (await collect(readStore(dir, { checkpoint }))).map((l) => l.text),
      [stored('track', 'e')],
    );
  });

  test('an abort ends a follow and saves the position', async () => {
    const dir = tempDir();
    const checkpoint = join(dir, 'reader.checkpoint');
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'a')]);
    const stop = new AbortController();
    const seen: string[] = [];
    const reading = (async () => {
      for await (const line of readStore(dir, {
        follow: true,
        pollMs: 20,
        checkpoint,
        signal: stop.signal,
      })) {
        seen.push(line.text);
        if (seen.length === 2) setTimeout(() => stop.abort(), 50);
      }
    })();
    await waitUntil(
      () => seen.length === 1,
      () => 'the first line',
    );
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'b')]);
    await reading;
    const size = statSync(join(dir, 'events-2026-11-30.ndjson')).size;
    const { files } = JSON.parse(readFileSync(checkpoint, 'utf8'));
    assert.deepEqual(Object.keys(files), ['events-2026-11-30.ndjson']);
    assert.equal(files['events-2026-11-30.ndjson'].offset, size);
  });
});

describe('readStore: a file cut back or replaced, and the line cap', () => {
  const name = 'events-2026-11-30.ndjson';
  // Lines of one length, as events of one shape are: a cut-back file refilled ends where it ended.
  const [a, b, c, d, e, f, g] = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((id) => stored('track', id)) as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];

  test('cut back and appended to (as long as before, a newline before the position): read again from its start, nothing skipped', async () => {
    const dir = tempDir();
    const checkpoint = join(dir, 'reader.checkpoint');
    const run = async () => {
      const r = await runRead(['--out', dir, '--from', checkpoint]);
      assert.equal(r.code, 0, r.stderr);
      return linesOf(r.stdout);
    };
    append(dir, name, [a, b]);
    assert.deepEqual(await run(), [a, b]);
    // The store refused a write that had reached the file (b, read meanwhile), cut it off, then stored c.
    truncateSync(join(dir, name), a.length + 1);
    append(dir, name, [c]);
    assert.deepEqual(await run(), [a, c], 'c: a again is allowed, c skipped is not');
    truncateSync(join(dir, name), a.length + 1);
    append(dir, name, [d, e]);
    assert.deepEqual(await run(), [a, d, e]);
    assert.deepEqual(await run(), [], 'all done');
  });

  test('following: a file cut back and appended to, or replaced by another, has its new lines given', async () => {
    const dir = tempDir();
    const path = join(dir, name);
    append(dir, name, [a, b]);
    const stop = new AbortController();
    const it = readStore(dir, { follow: true, pollMs: 20, signal: stop.signal });
    const follow = follower(it);
    /** The lines given up to `last`, which must come. */
    const until = async (last: string) => {
      const texts: string[] = [];
      while (texts.at(-1) !== last) texts.push(...(await follow.take(1)));
      return texts;
    };
    try {
      assert.deepEqual(await follow.take(2), [a, b]);
      truncateSync(path, a.length + 1);
      append(dir, name, [c]);
      assert.deepEqual(await until(c), [a, c], 'as long as before');
      truncateSync(path, a.length + 1);
      append(dir, name, [d, e]);
      assert.deepEqual(await until(e), [a, d, e], 'longer, a newline just before the position');
      writeFileSync(join(dir, 'replacement.tmp'), `${a}\n${f}\n${g}\n`);
      renameSync(join(dir, 'replacement.tmp'), path);
      assert.deepEqual(await until(g), [a, f, g], 'replaced: another inode, as long');
      // An unfinished last line searched, then cut off and replaced by shorter whole lines.
      append(dir, name, [], 'x'.repeat(2 * b.length));
      assert.equal(await follow.next(100), 'nothing');
      truncateSync(path, statSync(path).size - 2 * b.length);
      append(dir, name, [b, c]);
      assert.deepEqual(await follow.take(2), [b, c], 'each whole, not run together');
      assert.equal(await follow.next(100), 'nothing');
    } finally {
      stop.abort();
      await it.return();
    }
  });

  test('the checkpoint holds with each offset the last line done (start, SHA-256); a bare offset (older checkpoints) still reads', async () => {
    const dir = tempDir();
    const checkpoint = join(dir, 'reader.checkpoint');
    append(dir, name, [a, b, c]);
    writeFileSync(checkpoint, JSON.stringify({ files: { [name]: a.length + 1 } }));
    assert.deepEqual(
      (await collect(readStore(dir, { checkpoint }))).map((l) => l.text),
      [b, c],
    );
    const lastLineSha256 = createHash('sha256').update(c).digest('hex');
    assert.deepEqual(JSON.parse(readFileSync(checkpoint, 'utf8')), {
      files: { [name]: { offset: 3 * (a.length + 1), lastLineStart: 2 * (a.length + 1), lastLineSha256 } },
    });
  });

  test('a line over maxLineBytes is refused naming its file and offset, finished or not; one at the limit is given', async () => {
    const max = 1000;
    const atLimit = `{"pad":"${'x'.repeat(max - 10)}"}`;
    assert.equal(atLimit.length, max);
    const dir = tempDir();
    append(dir, name, [a, atLimit]);
    const texts = async (d: string) =>
      (await collect(readStore(d, { maxLineBytes: max }))).map((l) => l.text);
    assert.deepEqual(await texts(dir), [a, atLimit]);
    append(dir, name, [`${atLimit}x`]);
    const tooLong = { name: 'LineTooLongError', file: name, offset: a.length + 1 + max + 1 };
    await assert.rejects(texts(dir), tooLong);
    // Unfinished: at the limit it is left for later; one byte over, it can only end longer.
    const unfinished = tempDir();
    append(unfinished, name, [a], 'x'.repeat(max));
    assert.deepEqual(await texts(unfinished), [a]);
    append(unfinished, name, [], 'x');
    await assert.rejects(texts(unfinished), { ...tooLong, offset: a.length + 1 });
    // Following, as it grows past the limit.
    const growing = tempDir();
    append(growing, name, [a], 'x'.repeat(max / 2));
    const stop = new AbortController();
    const it = readStore(growing, { follow: true, pollMs: 20, maxLineBytes: max, signal: stop.signal });
    try {
      const follow = follower(it);
      assert.deepEqual(await follow.take(1), [a]);
      assert.equal(await follow.next(100), 'nothing');
      append(growing, name, [], 'x'.repeat(max / 2 + 1));
      await assert.rejects(follow.take(1), { ...tooLong, offset: a.length + 1 });
    } finally {
      stop.abort();
      await it.return();
    }
    for (const bad of [0, 1.5, -1, constants.MAX_STRING_LENGTH + 1]) {
      assert.throws(() => readStore(dir, { maxLineBytes: bad }), RangeError, String(bad));
    }
  });

  test('--max-line-bytes (64 MiB by default): a longer line is exit 1 with one line naming the file and offset', {
    timeout: 30_000,
  }, async () => {
    const small = tempDir();
    append(small, name, [a, 'x'.repeat(1001)]);
    const big = tempDir();
    append(big, name, [a], 'x'.repeat(64 * 1024 * 1024 + 1));
    const [limited, byDefault] = await Promise.all([
      runRead(['--out', small, '--max-line-bytes', '1000']),
      runRead(['--out', big]),
    ]);
    for (const run of [limited, byDefault]) {
      assert.equal(run.code, 1, run.stderr);
      assert.equal(run.stdout, `${a}\n`, 'the lines before it');
      assert.match(
        run.stderr,
        new RegExp(`^segment-endpoint read: [^\\n]*${name}[^\\n]* byte ${a.length + 1}\\b[^\\n]*\\n$`),
      );
    }
  });

  test('an unfinished last line is searched once: a poll reads only the bytes added since', {
    skip: !existsSync('/proc/self/io') && 'needs /proc/self/io (Linux)',
  }, async () => {
    const dir = tempDir();
    const long = stored('track', 'long', 16 * 1024 * 1024);
    const rest = long.slice(-1000);
    append(dir, name, [a], long.slice(0, -1000));
    const bytesRead = () => Number(/^rchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))?.[1]);
    const stop = new AbortController();
    const it = readStore(dir, { follow: true, pollMs: 10, signal: stop.signal });
    try {
      const follow = follower(it);
      assert.deepEqual(await follow.take(1), [a]);
      assert.equal(await follow.next(500), 'nothing', 'the unfinished line searched');
      const before = bytesRead();
      for (let i = 0; i < 10; i++) {
        append(dir, name, [], rest.slice(i * 90, (i + 1) * 90));
        assert.equal(await follow.next(50), 'nothing');
      }
      const read = bytesRead() - before;
      assert.ok(read < 1024 * 1024, `${read} bytes read by 50 polls: the line is not searched again`);
      append(dir, name, [rest.slice(900)]);
      assert.deepEqual(await follow.take(1), [long], 'read whole once its newline is there');
    } finally {
      stop.abort();
      await it.return();
    }
  });
});

describe('segment-endpoint read: following, restarts, failures', () => {
  test('--follow with the endpoint writing: every acknowledged messageId exactly once', {
    timeout: 30_000,
  }, async (t) => {
    const dir = tempDir();
    const out = join(dir, 'store');
    const endpoints: Endpoint[] = [];
    t.after(cleanup(join(dir, 'endpoint'), endpoints));
    const ep = await startEndpoint([
      ...tlsFlags(join(dir, 'endpoint')),
      '--api-key',
      'dev-key',
      '--out',
      out,
      '--workers',
      '2',
    ]);
    endpoints.push(ep);
    const checkpoint = join(dir, 'reader.checkpoint');
    const reader = spawnRead(['--out', out, '--follow', '--from', checkpoint]);
    t.after(() => reader.child.kill('SIGKILL'));
    await waitUntil(
      () => existsSync(checkpoint),
      () => 'the reader to start',
    );
    const answers = await load({
      url: ep.url,
      connections: 8,
      maxRequests: 600,
      event: (n) => trackEvent({ messageId: `follow-${n}` }),
    });
    const acknowledged = answers.filter((a) => a.status === 200).map((a) => a.id);
    assert.equal(acknowledged.length, 600);
    const printed = () => linesOf(reader.stdout()).map((line) => JSON.parse(line).event.messageId as string);
    await waitUntil(
      () => printed().length >= acknowledged.length,
      () => `${acknowledged.length} lines, not ${printed().length}`,
    );
    reader.child.kill('SIGTERM');
    assert.equal(await reader.closed, 0, reader.stderr());
    assert.ok(reader.stdout().endsWith('\n'));
    const ids = printed();
    assert.equal(new Set(ids).size, ids.length, 'no line twice');
    assert.deepEqual([...ids].sort(), [...acknowledged].sort(), 'every acknowledged event, nothing else');
    // SIGTERM saved the checkpoint: every file done to its end.
    const { files } = JSON.parse(readFileSync(checkpoint, 'utf8')) as {
      files: Record<string, { offset: number }>;
    };
    assert.ok(Object.keys(files).length >= 1);
    for (const [name, position] of Object.entries(files)) {
      assert.equal(position.offset, statSync(join(out, name)).size, name);
    }
    await stopCleanly(ep);
  });

  test('killed with SIGKILL and restarted with the same --from: every line at least once, whole, not from scratch', {
    timeout: 30_000,
  }, async () => {
    const dir = tempDir();
    const checkpoint = join(dir, 'reader.checkpoint');
    const store = join(dir, 'store');
    mkdirSync(store);
    const expected: string[] = [];
    for (const worker of [1, 2]) {
      const lines = Array.from({ length: 20_000 }, (_, n) => stored('track', `w${worker}-${n}`, 200));
      append(store, `events-2026-11-30-w${worker}.ndjson`, lines);
      expected.push(...lines);
    }
    // The first run's stdout is drained slowly, so that it is killed part-way, after saving at least once.
    const first = spawnRead(['--out', store, '--from', checkpoint]);
    first.child.stdout?.on('data', () => {
      first.child.stdout?.pause();
      setTimeout(() => first.child.stdout?.resume(), 20);
    });
    const progress = () => {
      try {
        const { files } = JSON.parse(readFileSync(checkpoint, 'utf8'));
        return Object.values(files as Record<string, { offset: number }>).reduce((a, b) => a + b.offset, 0);
      } catch {
        return 0;
      }
    };
    await waitUntil(
      () => progress() > 0,
      () => 'a checkpoint with progress',
    );
    first.child.kill('SIGKILL');
    assert.equal(await first.closed, -1);
    const second = await runRead(['--out', store, '--from', checkpoint]);
    assert.equal(second.code, 0, second.stderr);

    const known = new Set(expected);
    const firstLines = linesOf(first.stdout());
    const secondLines = linesOf(second.stdout);
    assert.ok(first.stdout().endsWith('\n'), 'the killed run printed no partial line');
    for (const line of [...firstLines, ...secondLines]) assert.ok(known.has(line), 'each line whole');
    const printed = new Set([...firstLines, ...secondLines]);
    assert.equal(printed.size, expected.length, 'every line at least once');
    const repeated = firstLines.length + secondLines.length - expected.length;
    assert.ok(firstLines.length > 0 && secondLines.length > 0, 'the first run was killed part-way');
    assert.ok(secondLines.length < expected.length, 'the second run resumed');
    assert.ok(repeated < expected.length / 10, `few lines printed twice (${repeated})`);
    assert.deepEqual(secondLines, expected.slice(expected.length - secondLines.length), 'resumed in order');
  });

  test('the checkpoint is replaced atomically: it always parses, also after kill -9', {
    timeout: 20_000,
  }, async () => {
    const dir = tempDir();
    const checkpoint = join(dir, 'reader.checkpoint');
    const name = 'events-2026-11-30.ndjson';
    append(dir, name, [stored('track', 'first')]);
    const reader = spawnRead(['--out', dir, '--follow', '--from', checkpoint]);
    await waitUntil(
      () => reader.stdout() !== '',
      () => 'the first line printed',
    );
    const inodes = new Set<number>();
    let reads = 0;
    let n = 0;
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      if (n % 10 === 0) append(dir, name, [stored('track', `m${n}`)]);
      n++;
      // Read as a consumer restarting at that moment would: whole, parsed.
      const text = readFileSync(checkpoint, 'utf8');
      assert.ok(JSON.parse(text).files, `a whole checkpoint: ${JSON.stringify(text)}`);
      inodes.add(statSync(checkpoint).ino);
      reads++;
      await new Promise((r) => setTimeout(r, 2));
    }
    reader.child.kill('SIGKILL');
    await reader.closed;
    const { files } = JSON.parse(readFileSync(checkpoint, 'utf8'));
    const position = files[name].offset as number;
    const stored_ = readFileSync(join(dir, name));
    assert.ok(position > 0 && position <= stored_.length && stored_[position - 1] === 0x0a, 'at a line end');
    assert.ok(
      inodes.size >= 2,
      `renamed over, not rewritten in place (${inodes.size} inodes in ${reads} reads)`,
    );
  });

  test('bad invocations exit 1 with one line and a hint', async () => {
    const dir = tempDir();
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'a')]);
    writeFileSync(join(dir, 'garbage.checkpoint'), '{"files":{"events-2026-11-30.ndjson":');
    writeFileSync(join(dir, 'wrong.checkpoint'), '{"files":{"events-2026-11-30.ndjson":-1}}');
    writeFileSync(
      join(dir, 'no-hash.checkpoint'),
      '{"files":{"events-2026-11-30.ndjson":{"offset":10,"lastLineStart":0}}}',
    );
    const cases: string[][] = [
      [],
      ['--follow'],
      ['--out', dir, '--bogus'],
      ['--out', dir, 'extra'],
      ['--out', join(dir, 'missing')],
      ['--out', join(dir, 'events-2026-11-30.ndjson')],
      ['--out', dir, '--type', 'purchase'],
      ['--out', dir, '--from', join(dir, 'garbage.checkpoint')],
      ['--out', dir, '--from', join(dir, 'wrong.checkpoint')],
      ['--out', dir, '--from', join(dir, 'no-hash.checkpoint')],
      ['--out', dir, '--out', dir],
      ['--out', dir, '--max-line-bytes', '0'],
      ['--out', dir, '--max-line-bytes', 'lots'],
      ['--out', dir, '--max-line-bytes', String(2 ** 30)],
      ['--out', dir, '--from', dir],
      ['--out', dir, '--from', join(dir, 'no-such-dir', 'reader.checkpoint')],
    ];
    const runs = await Promise.all(cases.map((args) => runRead(args)));
    for (const [i, run] of runs.entries()) {
      const what = JSON.stringify(cases[i]);
      assert.equal(run.code, 1, what);
      assert.equal(run.stdout, '', what);
      assert.match(
        run.stderr,
        /^segment-endpoint read: [^\n]+\n(Try 'segment-endpoint read --help'\.\n)?$/,
        what,
      );
    }
    const help = await runRead(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: segment-endpoint read --out DIR/);
  });

  test('stdout closed after one line (| head -1): exit 0, nothing on stderr', async () => {
    const dir = tempDir();
    append(
      dir,
      'events-2026-11-30.ndjson',
      Array.from({ length: 5000 }, (_, n) => stored('track', `m${n}`, 100)),
    );
    const run = spawnRead(['--out', dir]);
    run.child.stdout?.once('data', () => run.child.stdout?.destroy());
    assert.equal(await run.closed, 0, run.stderr());
    assert.equal(run.stderr(), '');
  });

  test('a slow stdout holds the reader back: one line in flight, not the store in memory', async () => {
    const dir = tempDir();
    const lines = Array.from({ length: 2000 }, (_, n) => stored('track', `m${n}`, 1000));
    append(dir, 'events-2026-11-30.ndjson', lines);
    let buffered = 0;
    let received = '';
    const stdout = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _encoding, done) {
        received += chunk.toString();
        setImmediate(done);
      },
    });
    const write = stdout.write.bind(stdout);
    stdout.write = ((...args: Parameters<typeof write>) => {
      const ok = write(...args);
      buffered = Math.max(buffered, stdout.writableLength);
      return ok;
    }) as typeof stdout.write;
    const stderr = { write: (text: string) => assert.fail(text) };
    assert.equal(await readMain(['--out', dir], { stdout, stderr }), 0);
    assert.equal(received, lines.map((line) => `${line}\n`).join(''));
    const longest = Math.max(...lines.map((line) => line.length + 1));
    assert.ok(buffered <= longest, `at most one line buffered, not ${buffered} bytes`);
  });
});
