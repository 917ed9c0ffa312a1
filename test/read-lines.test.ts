// `segment-endpoint read` and readStore on what is stored: every line in order across days and workers,
// whole lines only; following (a new day's file) and the checkpoint.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { readStore, type StoreHole } from '../src/read/store-reader.ts';
import { repairStore } from '../src/sinks/file-repair.ts';
import { tempDirs } from './helpers.ts';
import { waitUntil } from './helpers-wait.ts';
import { append, collect, follower, linesOf, runRead, stored } from './read-harness.ts';

const tempDir = tempDirs('read');

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
      // Under another casing than the canonical null beside it: the type the endpoint took it for.
      event: { type: null, Type: 'Identify' },
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
    // A string was read as its letters (a TypeError from inside), an empty list kept nothing, and an empty
    // checkpoint wrote `.tmp` in the working directory.
    assert.throws(() => readStore(dir, { types: 'track' as unknown as string[] }), {
      name: 'TypeError',
      message: /^types /, // its own refusal, not `.map is not a function` from within
    });
    assert.throws(() => readStore(dir, { types: [] }), RangeError);
    assert.throws(() => readStore(dir, { checkpoint: '' }), TypeError);
    assert.throws(() => readStore(dir, { pollMs: 0 }), RangeError);
    // Past a timer's range node polls every millisecond instead (a TimeoutOverflowWarning).
    assert.throws(() => readStore(dir, { pollMs: 2 ** 31 }), /at most 2147483647/);
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

  test("a power cut's hole (zeros, then part of a line) is not given, nor what follows, until the endpoint's repair", async () => {
    // The last commit's writes reached the disk out of order: a run of zeros, the end of a line, a line.
    // None was acknowledged. The endpoint sets them aside at its next start; a reader run before that
    // printed the zeros as a line (not JSON), and everything after them.
    const dir = tempDir();
    const name = 'events-2026-11-30-w1.ndjson';
    append(dir, name, [
      stored('track', 'm1'),
      `${'\0'.repeat(182)}","event":{"type":"track"}}`,
      stored('track', 'm2'),
    ]);
    const once = await runRead(['--out', dir]);
    assert.equal(once.code, 0, once.stderr);
    assert.equal(once.stdout, `${stored('track', 'm1')}\n`, 'the line before the hole only');
    const at = stored('track', 'm1').length + 1;
    assert.match(
      once.stderr,
      new RegExp(`${name}: a zero byte in the line at byte ${at}`),
      'said, not silent',
    );
    assert.match(once.stderr, /the endpoint's next start sets them aside/);
    const stop = new AbortController();
    const holes: StoreHole[] = [];
    const onHole = (hole: StoreHole) => holes.push(hole);
    const it = readStore(dir, { follow: true, pollMs: 20, signal: stop.signal, onHole });
    const follow = follower(it);
    try {
      assert.deepEqual(await follow.take(1), [stored('track', 'm1')]);
      assert.equal(await follow.next(300), 'nothing', 'neither the hole nor the line after it');
      const size = statSync(join(dir, name)).size;
      assert.deepEqual(holes, [{ file: name, offset: at, bytes: size - at, setAsideAtStart: true }], 'once');
      await repairStore(dir);
      append(dir, name, [stored('track', 'm3')]);
      assert.deepEqual(await follow.take(1), [stored('track', 'm3')], 'on from the repair, m1 not again');
    } finally {
      stop.abort();
      await it.return();
    }
  });

  test("a zero byte the endpoint's start never sets aside (an older day's file, or deeper than a commit) is said, and a one-pass read exits 1", async () => {
    // Not a power cut's (the store repairs its writers' two newest files, their last commit): damage. The
    // reader gave nothing of the rest of that file and went on to the next, and said nothing.
    const dir = tempDir();
    const old = 'events-2026-11-28.ndjson';
    append(dir, old, [stored('track', 'o1'), `${'\0'.repeat(40)}"}}`, stored('track', 'o2')]);
    append(dir, 'events-2026-11-29.ndjson', [stored('track', 'p1')]);
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'q1')]);
    const run = await runRead(['--out', dir]);
    assert.equal(run.code, 1, 'not every stored line was printed');
    assert.deepEqual(linesOf(run.stdout), [
      stored('track', 'o1'),
      stored('track', 'p1'),
      stored('track', 'q1'),
    ]);
    const at = stored('track', 'o1').length + 1;
    assert.match(run.stderr, new RegExp(`${old}: a zero byte in the line at byte ${at}`));
    assert.match(run.stderr, /the endpoint's start does not set them aside/);
    // The newest file, its hole deeper than the last commit the endpoint's start looks through (1 MiB).
    const deep = 'events-2026-11-30.ndjson';
    append(dir, deep, [
      `${'\0'.repeat(10)}"}}`,
      ...Array.from({ length: 9 }, (_, i) => stored('track', `r${i}`, 120 * 1024)),
    ]);
    const holes: StoreHole[] = [];
    await collect(readStore(dir, { onHole: (hole) => holes.push(hole) }));
    assert.deepEqual(
      holes.map(({ file, setAsideAtStart }) => [file, setAsideAtStart]),
      [
        [old, false],
        [deep, false],
      ],
    );
  });
});

describe('readStore: following and the checkpoint', () => {
  test('a store directory moved away while followed: the reader waits, and reads the one the endpoint makes again', async () => {
    // The endpoint makes its directory again when it is moved or removed, and writes on there; a
    // follower stopped with exit 1 and a bare "ENOENT ... scandir".
    const dir = tempDir();
    const name = 'events-2026-11-30-w1.ndjson';
    append(dir, name, [stored('track', 'n1')]);
    const stop = new AbortController();
    const it = readStore(dir, { follow: true, pollMs: 20, signal: stop.signal });
    const follow = follower(it);
    try {
      assert.deepEqual(await follow.take(1), [stored('track', 'n1')]);
      renameSync(dir, `${dir}-moved`);
      assert.equal(await follow.next(200), 'nothing');
      mkdirSync(dir);
      append(dir, name, [stored('track', 'n2')]);
      assert.deepEqual(await follow.take(1), [stored('track', 'n2')]);
    } finally {
      stop.abort();
      await it.return();
      rmSync(`${dir}-moved`, { recursive: true, force: true });
    }
  });

  test('a store directory that was never there is an error, followed or not: not waited for', async () => {
    const dir = join(tempDir(), 'never-made');
    for (const follow of [false, true]) {
      await assert.rejects(collect(readStore(dir, { follow, pollMs: 20 })), { code: 'ENOENT' });
    }
  });

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

  test('a read that fails after a line was done keeps it done: the next run does not give it again', async () => {
    // The position saved at the error was the one before the line the loop had asked past: each error
    // exit gave that line again.
    const dir = tempDir();
    const checkpoint = join(dir, 'reader.checkpoint');
    const [a, long, c] = [stored('track', 'a'), stored('track', 'long', 400), stored('track', 'c')];
    append(dir, 'events-2026-11-30.ndjson', [a, long, c]);
    const given: string[] = [];
    await assert.rejects(
      async () => {
        for await (const line of readStore(dir, { checkpoint, maxLineBytes: 300 })) given.push(line.text);
      },
      { name: 'LineTooLongError' },
    );
    assert.deepEqual(given, [a]);
    const saved = JSON.parse(readFileSync(checkpoint, 'utf8'));
    assert.equal(saved.files['events-2026-11-30.ndjson'].offset, (a as string).length + 1);
    assert.deepEqual(
      (await collect(readStore(dir, { checkpoint }))).map((l) => l.text),
      [long, c],
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
