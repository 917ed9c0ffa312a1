// `segment-endpoint read` stopped by a signal while its consumer lags: the line being written is finished
// first, so the pipe never holds half a line; a second signal stops it at once.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, mkdirSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDirs } from './helpers.ts';
import { CLI, cleanEnv, ROOT } from './helpers-spawn.ts';
import { waitUntil } from './helpers-wait.ts';
import { append, linesOf, stored } from './read-harness.ts';

const tempDir = tempDirs('read-signals');

/**
 * The reader writing into a pipe (a FIFO, as a shell's `|`: Node's own child pipes are socket pairs)
 * that nobody reads until `drain()`: the pipe fills, a line half written.
 */
function laggingReader(out: string, flags: readonly string[] = ['--follow']) {
  const fifo = join(out, '..', 'stdout.fifo');
  execFileSync('mkfifo', [fifo]);
  const readEnd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  const writeEnd = openSync(fifo, constants.O_WRONLY);
  const child = spawn(process.execPath, [...CLI, 'read', '--out', out, ...flags], {
    cwd: ROOT,
    env: cleanEnv(),
    stdio: ['ignore', writeEnd, 'pipe'],
  });
  closeSync(writeEnd);
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const closed = new Promise<number>((done) => child.on('close', (code) => done(code ?? -1)));
  const chunks: Buffer[] = [];
  const buffer = Buffer.alloc(65_536);
  /** Reads what the pipe holds into `chunks`: false at its end (every writer gone). */
  const readSome = async (): Promise<boolean> => {
    for (;;) {
      try {
        const n = readSync(readEnd, buffer);
        if (n > 0) chunks.push(Buffer.from(buffer.subarray(0, n)));
        return n > 0;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
  };
  /** Reads the pipe to its end. */
  const drain = async () => {
    while (await readSome());
    closeSync(readEnd);
    return Buffer.concat(chunks).toString();
  };
  /** Bytes the reader has written so far (Linux's count of its writes). */
  const written = () => Number(/^wchar: (\d+)$/m.exec(readFileSync(`/proc/${child.pid}/io`, 'utf8'))?.[1]);
  /**
   * Until the reader is blocked on the full pipe: a whole line has come through (it is up and writing),
   * and then it writes nothing more between two looks. Once this pipe is full it cannot.
   */
  const blocked = async () => {
    while (!Buffer.concat(chunks).includes(0x0a)) assert.ok(await readSome(), 'the reader ended early');
    let last = -1;
    await waitUntil(
      () => {
        const now = written();
        const still = now === last;
        last = now;
        return still;
      },
      () => 'the reader to block on the full pipe',
    );
  };
  return { child, closed, stderr: () => stderr, drain, blocked };
}

/** A store of 100 lines of ~20 KB: far more than a pipe and the reading side's buffer hold. */
function bigStore(): string {
  const out = join(tempDir(), 'store');
  mkdirSync(out);
  append(
    out,
    'events-2026-11-30.ndjson',
    Array.from({ length: 100 }, (_, n) => stored('track', `big-${n}`, 20_000)),
  );
  return out;
}

// SIGHUP: the terminal or the ssh session the reader ran in went away. Its default action ended the
// reader there and then, half a line in the pipe and the checkpoint not saved.
for (const signal of ['SIGTERM', 'SIGHUP'] as const) {
  test(`${signal} while stdout is full: the line being written is finished, then exit 0`, async () => {
    const reader = laggingReader(bigStore());
    await reader.blocked(); // the signal comes mid-line
    reader.child.kill(signal);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const text = await reader.drain();
    assert.equal(await reader.closed, 0, reader.stderr());
    assert.ok(text.endsWith('\n'), `ends mid-line: ...${text.slice(-40)}`);
    const lines = linesOf(text);
    assert.ok(lines.length > 0 && lines.length < 100, `${lines.length} lines`);
    for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), line.slice(0, 80));
  });
}

test('a second signal while the line is still being written stops it at once, and says so', async () => {
  const reader = laggingReader(bigStore());
  await reader.blocked();
  reader.child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 200));
  reader.child.kill('SIGINT');
  await waitUntil(
    () => reader.child.exitCode !== null,
    () => 'the reader to exit on the second signal, its consumer still not reading',
  );
  await reader.drain();
  assert.equal(await reader.closed, 1);
  assert.match(reader.stderr(), /second signal: stopped with a line half written/);
});

test('SIGTERM while stdout is full, with --from: the next run starts at the line after the last one printed', async () => {
  const out = bigStore();
  const checkpoint = join(out, '..', 'checkpoint');
  const reader = laggingReader(out, ['--from', checkpoint]);
  await reader.blocked();
  reader.child.kill('SIGTERM');
  const first = linesOf(await reader.drain());
  assert.equal(await reader.closed, 0, reader.stderr());
  const args = [...CLI, 'read', '--out', out, '--from', checkpoint];
  const rest = linesOf(
    execFileSync(process.execPath, args, { cwd: ROOT, env: cleanEnv(), maxBuffer: 1 << 26 }).toString(),
  );
  assert.ok(first.length > 0 && rest.length > 0, `${first.length} lines, then ${rest.length}`);
  const all = [...first, ...rest];
  assert.equal(new Set(all).size, all.length, 'a line printed by both runs');
  assert.equal(all.length, 100);
});

test('from the loader to the reader, a stop signal always has a listener: none for a moment would let it kill', async () => {
  // The loader heard the signals while the reader loaded, then let go before the reader listened. With no
  // listener left, Node puts the signal's default action back (a SIGTERM then is exit 143) and drops one
  // it caught and has not handed over yet: a reader started under a supervisor's stop kept following.
  const { READ_SIGNALS, runRead } = await import('../src/read/main.ts');
  const base = new Map(READ_SIGNALS.map((signal) => [signal, process.listenerCount(signal)]));
  const unheard = new Set<string>();
  const gaps: string[] = [];
  const removed = (name: string | symbol) => {
    if (base.has(name as never) && process.listenerCount(name) === base.get(name as never))
      unheard.add(String(name));
  };
  const added = (name: string | symbol) => {
    if (unheard.delete(String(name))) gaps.push(String(name));
  };
  process.on('removeListener', removed);
  process.on('newListener', added);
  const stderr = process.stderr.write;
  process.stderr.write = () => true; // the reader's one line for the unknown flag below
  try {
    assert.equal(await runRead(['--no-such-flag']), 1);
  } finally {
    process.stderr.write = stderr;
    process.off('removeListener', removed);
    process.off('newListener', added);
  }
  assert.deepEqual(gaps, []);
  assert.deepEqual(new Map(READ_SIGNALS.map((signal) => [signal, process.listenerCount(signal)])), base);
});
