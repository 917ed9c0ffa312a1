// readStore on files that change under it: cut back and appended to, or replaced, while followed or
// between runs; the checkpoint's form; a line past the cap, and an unfinished line polled.
import assert from 'node:assert/strict';
import { constants } from 'node:buffer';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Positions } from '../src/read/checkpoint.ts';
import { readStore } from '../src/read/store-reader.ts';
import { nodeIo, type StoreIo } from '../src/sinks/file-io.ts';
import { tempDirs } from './helpers.ts';
import { append, collect, follower, linesOf, runRead, stored } from './read-harness.ts';

const tempDir = tempDirs('read');

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
      // Measured once its first search is over: on a busy machine it outlasted the 500 ms above, and the
      // rest of its 16 MB was counted as the polls'.
      let before = bytesRead();
      for (let was = -Infinity; before - was > 64 * 1024; before = bytesRead()) {
        was = before; // (reading /proc/self/io is a read too: a few hundred bytes)
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
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

  test('a checkpoint saved by two readers at once: the one whose temp file was taken says so', async () => {
    // Both write `<checkpoint>.tmp`: the one that renames second finds it gone, and said only ENOENT.
    const dir = tempDir();
    const path = join(dir, 'shared.checkpoint');
    const io: StoreIo = {
      ...nodeIo,
      rename: async (from, to) => {
        rmSync(from); // the other reader's rename, just before this one's
        return nodeIo.rename(from, to);
      },
    };
    const positions = await Positions.load(path, io);
    await assert.rejects(positions.save(), {
      name: 'CheckpointError',
      message: /shared\.checkpoint\.tmp was taken away as it was saved: is another reader using/,
    });
  });
});
