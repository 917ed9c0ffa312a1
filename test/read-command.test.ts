// `segment-endpoint read` as a command: bad invocations exit 1 with a hint, and stdout closing early or
// draining slowly.
import assert from 'node:assert/strict';
import { constants } from 'node:buffer';
import { execFileSync } from 'node:child_process';
import {
  chownSync,
  closeSync,
  constants as fsConstants,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { readMain } from '../src/read/command.ts';
import { BUILT } from './cli-harness.ts';
import { bytesWaiting, tempDirs } from './helpers.ts';
import { CLI, runWithStdout } from './helpers-spawn.ts';
import { within } from './helpers-wait.ts';
import { append, runRead, spawnRead, stored } from './read-harness.ts';

const tempDir = tempDirs('read');

describe('segment-endpoint read: following, restarts, failures', () => {
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
      // V8's longest string: with its newline, one byte too long to print.
      ['--out', dir, '--max-line-bytes', String(constants.MAX_STRING_LENGTH)],
      // A checkpoint kept there would overwrite a day of events.
      ['--out', dir, '--from', join(dir, 'events-2026-11-30.ndjson')],
      ['--out', dir, '--from', dir],
      ['--out', dir, '--from', join(dir, 'no-such-dir', 'reader.checkpoint')],
    ];
    // The command as shipped (dist/, one bundled file): 18 starts at once, each ~5 times quicker than the
    // sources through tsx; the messages are the same code's.
    const runs = await Promise.all(cases.map((args) => runRead(args, BUILT)));
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
    const fromStoreFile =
      runs[cases.findIndex((args) => args.at(-2) === '--from' && args.at(-1)?.endsWith('.ndjson'))];
    assert.match(fromStoreFile?.stderr ?? '', /is a file of the store: keep the checkpoint elsewhere/);
    assert.equal(readFileSync(join(dir, 'events-2026-11-30.ndjson'), 'utf8'), `${stored('track', 'a')}\n`);
    const help = await runRead(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: segment-endpoint read --out DIR/);
  });

  test("the store's other files as --from are refused: its lock (a running endpoint's), a probe's, a torn fragment", async () => {
    // Only the event files were refused: a checkpoint renamed over `.segment-endpoint.lock` took a running
    // endpoint's lock from it (every event then 503 until the file was removed by hand), and one named as
    // a fragment set aside would have been appended to by the next repair.
    const dir = tempDir();
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'a')]);
    symlinkSync('12345 1796400000000 boot', join(dir, '.segment-endpoint.lock'));
    const probe = '.probe-0123456789ab'; // removed by the endpoint's next start, as a probe left behind
    for (const name of [
      '.segment-endpoint.lock',
      '.segment-endpoint.lock.4242',
      probe,
      'events-2026-11-30.ndjson.torn',
    ]) {
      const run = await runRead(['--out', dir, '--from', join(dir, name)]);
      assert.equal(run.code, 1, `${name}: ${run.stdout}`);
      assert.match(run.stderr, /is a file of the store: keep the checkpoint elsewhere/, name);
    }
    assert.equal(readlinkSync(join(dir, '.segment-endpoint.lock')), '12345 1796400000000 boot');
    assert.deepEqual(readdirSync(dir).sort(), ['.segment-endpoint.lock', 'events-2026-11-30.ndjson']);
  });

  test('a file of the store as --from is refused however the paths reach it (a link to the store, to the file)', async () => {
    const root = tempDir();
    const dir = join(root, 'store');
    mkdirSync(dir);
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'a')]);
    symlinkSync('store', join(root, 'link'));
    symlinkSync(join(dir, 'events-2026-11-30.ndjson'), join(root, 'checkpoint'));
    const ways = [
      ['--out', join(root, 'link'), '--from', join(dir, 'events-2099-01-01.ndjson')],
      ['--out', dir, '--from', join(root, 'link', 'events-2099-01-01.ndjson')],
      ['--out', dir, '--from', join(root, 'checkpoint')],
    ];
    for (const args of ways) {
      const run = await runRead(args);
      assert.equal(run.code, 1, `${args.join(' ')}: ${run.stdout}`);
      assert.match(run.stderr, /is a file of the store: keep the checkpoint elsewhere/, args.join(' '));
      assert.equal(run.stdout, '');
    }
    assert.deepEqual(readdirSync(dir), ['events-2026-11-30.ndjson']);
    assert.equal(readFileSync(join(dir, 'events-2026-11-30.ndjson'), 'utf8'), `${stored('track', 'a')}\n`);
  });

  test("a checkpoint's temporary file planted as a symbolic link is refused; its target is untouched", async () => {
    // Whoever can write beside the checkpoint must not make the reader (root, a service user) write
    // through a link to a file of their choosing.
    const dir = tempDir();
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'a')]);
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'precious\n');
    symlinkSync(victim, join(dir, 'reader.checkpoint.tmp'));
    const run = await runRead(['--out', dir, '--from', join(dir, 'reader.checkpoint')]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /reader\.checkpoint\.tmp is a symbolic link: remove it/);
    assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  });

  test("a checkpoint's temporary file planted as a directory or a hard link is refused; a linked file is not emptied", async () => {
    // A directory gave a bare EISDIR; a hard link was opened with O_TRUNC, emptying the file it shares.
    const dir = tempDir();
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'a')]);
    const temp = join(dir, 'reader.checkpoint.tmp');
    mkdirSync(temp);
    const asDirectory = await runRead(['--out', dir, '--from', join(dir, 'reader.checkpoint')]);
    assert.equal(asDirectory.code, 1, asDirectory.stderr);
    assert.match(asDirectory.stderr, /reader\.checkpoint\.tmp is not a regular file: remove it/);
    rmdirSync(temp);
    const precious = join(tempDir(), 'precious');
    writeFileSync(precious, 'precious\n');
    linkSync(precious, temp);
    const asLink = await runRead(['--out', dir, '--from', join(dir, 'reader.checkpoint')]);
    assert.equal(asLink.code, 1, asLink.stderr);
    assert.match(asLink.stderr, /reader\.checkpoint\.tmp has other names \(hard links\): remove it/);
    assert.equal(readFileSync(precious, 'utf8'), 'precious\n');
  });

  test('a checkpoint that exists but cannot be written again is refused before a line is printed', async () => {
    // Only a new checkpoint was written at start: an existing one that could not be replaced failed at
    // its first save a second in, after a backlog printed that the next run would print again.
    const dir = tempDir();
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'a')]);
    const checkpoint = join(dir, 'reader.checkpoint');
    const first = await runRead(['--out', dir, '--from', checkpoint]);
    assert.equal(first.code, 0, first.stderr);
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'b')]);
    mkdirSync(`${checkpoint}.tmp`);
    const run = await runRead(['--out', dir, '--from', checkpoint]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /reader\.checkpoint\.tmp is not a regular file: remove it/);
    assert.equal(run.stdout, '', 'nothing printed that the checkpoint could not keep');
  });

  test("a checkpoint's temporary file of another user's is refused: it would become the checkpoint, theirs to edit", {
    skip: process.geteuid?.() !== 0 && 'needs root, to give a file to another user',
  }, async () => {
    const dir = tempDir();
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'a')]);
    const temp = join(dir, 'reader.checkpoint.tmp');
    writeFileSync(temp, 'junk');
    chownSync(temp, 65534, 65534);
    const run = await runRead(['--out', dir, '--from', join(dir, 'reader.checkpoint')]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /reader\.checkpoint\.tmp is another user's \(uid 65534\): remove it/);
  });

  test('entries named like store files that are not files (a FIFO, a socket, a directory, a link) are passed over; a FIFO or a huge file as --from is refused', async () => {
    // A FIFO blocked the reader in open() for ever, deaf to SIGTERM; a directory stopped it with a bare
    // EISDIR naming nothing; a socket, with a bare ENXIO, at every run, the days after it never printed.
    const dir = tempDir();
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'a')]);
    execFileSync('mkfifo', [join(dir, 'events-2026-11-29.ndjson')]);
    mkdirSync(join(dir, 'events-2026-11-28.ndjson'));
    const socket = join(dir, 'events-2026-11-26.ndjson');
    const listen = `require('node:net').createServer().listen(${JSON.stringify(socket)}, () => process.exit(0))`;
    execFileSync(process.execPath, ['-e', listen]);
    // A link: the store writes none, and `read` (often run as root) would print the file it leads to.
    const outside = join(tempDir(), 'not-the-store');
    writeFileSync(outside, `${stored('track', 'outside')}\n`);
    symlinkSync(outside, join(dir, 'events-2026-11-27.ndjson'));
    const run = await runRead(['--out', dir]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `${stored('track', 'a')}\n`);
    const huge = join(dir, 'huge.checkpoint');
    writeFileSync(huge, '');
    truncateSync(huge, 700 * 1024 * 1024); // sparse: read whole, it took 700 MB of memory to refuse
    const fromHuge = await runRead(['--out', dir, '--from', huge]);
    assert.equal(fromHuge.code, 1);
    assert.match(fromHuge.stderr, /huge\.checkpoint is 734003200 bytes, more than any checkpoint holds/);
    // The bound itself, 64 MiB, is read (and found not to be a checkpoint); a byte more is not.
    for (const [size, said] of [
      [64 * 1024 * 1024, /huge\.checkpoint is not JSON/],
      [64 * 1024 * 1024 + 1, /huge\.checkpoint is 67108865 bytes, more than any checkpoint holds/],
    ] as const) {
      truncateSync(huge, size);
      const atBound = await runRead(['--out', dir, '--from', huge]);
      assert.equal(atBound.code, 1);
      assert.match(atBound.stderr, said);
    }
    execFileSync('mkfifo', [join(dir, 'fifo.checkpoint')]);
    const fromFifo = await runRead(['--out', dir, '--from', join(dir, 'fifo.checkpoint')]);
    assert.equal(fromFifo.code, 1);
    assert.match(fromFifo.stderr, /fifo\.checkpoint is not a regular file/);
  });

  test("a checkpoint's temporary file planted as a FIFO is refused, with no reader or with one: nothing goes into it", async () => {
    // With a reader, the checkpoint went into the FIFO and the reader stopped on a bare EINVAL from its sync.
    const dir = tempDir();
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'a')]);
    const temp = join(dir, 'reader.checkpoint.tmp');
    execFileSync('mkfifo', [temp]);
    const alone = await runRead(['--out', dir, '--from', join(dir, 'reader.checkpoint')]);
    assert.equal(alone.code, 1, alone.stderr);
    assert.match(alone.stderr, /reader\.checkpoint\.tmp is not a regular file: remove it/);
    const reader = openSync(temp, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    try {
      const beside = await runRead(['--out', dir, '--from', join(dir, 'reader.checkpoint')]);
      assert.equal(beside.code, 1, beside.stderr);
      assert.match(beside.stderr, /reader\.checkpoint\.tmp is not a regular file: remove it/);
      const got = bytesWaiting(reader);
      assert.equal(got, 0, 'nothing in the FIFO');
    } finally {
      closeSync(reader);
    }
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

  test('stdout a file that fills up (a size limit, a full disk): the line cut short is taken back, none lost', async () => {
    // Node's stream for a file took a short write for a whole one: the line cut at the limit counted as
    // printed, and the next run, from the checkpoint, appended the line after it to the fragment.
    const dir = tempDir();
    const lines = Array.from({ length: 20 }, (_, n) => stored('track', `m${n}`, 20));
    append(dir, 'events-2026-11-30.ndjson', lines);
    const out = join(dir, 'out', 'printed.ndjson');
    mkdirSync(join(dir, 'out'));
    const checkpoint = join(dir, 'out', 'reader.checkpoint');
    const readInto = (flags: string, limit: string) =>
      runWithStdout(
        'sh',
        [
          '-c',
          `ulimit -f ${limit} && exec "$@"`,
          'sh',
          process.execPath,
          ...CLI,
          'read',
          '--out',
          dir,
          '--from',
          checkpoint,
        ],
        openSync(out, flags),
      );
    const cut = await readInto('w', '1'); // 1,024 bytes: the limit falls inside a line
    assert.equal(cut.code, 1, cut.stderr);
    assert.match(cut.stderr, /EFBIG|too large/);
    const printed = readFileSync(out, 'utf8');
    assert.ok(printed.length < 1024 && printed.endsWith('\n'), JSON.stringify(printed.slice(-40)));
    const rest = await readInto('a', 'unlimited');
    assert.equal(rest.code, 0, rest.stderr);
    assert.equal(readFileSync(out, 'utf8'), lines.map((line) => `${line}\n`).join(''));
  });

  test('stdout a file written from its start over what it holds (1<>FILE): a line cut short takes nothing else off', async () => {
    // Cutting the line back assumed it was at the file's end: here that would have cut the file's own tail.
    const dir = tempDir();
    append(
      dir,
      'events-2026-11-30.ndjson',
      Array.from({ length: 20 }, (_, n) => stored('track', `m${n}`, 20)),
    );
    const out = join(dir, 'held.txt');
    writeFileSync(out, `${'x'.repeat(1999)}\n`);
    const cut = await runWithStdout(
      'sh',
      ['-c', 'ulimit -f 1 && exec "$@"', 'sh', process.execPath, ...CLI, 'read', '--out', dir],
      openSync(out, 'r+'),
    );
    assert.equal(cut.code, 1, cut.stderr);
    assert.equal(readFileSync(out).length, 2000, 'the file keeps its length');
    assert.ok(readFileSync(out, 'utf8').endsWith('x\n'));
  });

  test('each line is printed as the bytes stored, not decoded and encoded again', async () => {
    // The endpoint stores UTF-8 only; a store damaged by hand or by the disk is shown as it is.
    const dir = tempDir();
    const damaged = Buffer.concat([
      Buffer.from('{"event":{"type":"track","name":"'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}}\n'),
    ]);
    const whole = Buffer.from(`${stored('track', 'a')}\n`);
    writeFileSync(join(dir, 'events-2026-11-30.ndjson'), Buffer.concat([damaged, whole]));
    const chunks: Buffer[] = [];
    const stdout = new Writable({
      write(chunk: Buffer, _encoding, done) {
        chunks.push(Buffer.from(chunk));
        done();
      },
    });
    const stderr = { write: (text: string) => assert.fail(text) };
    assert.equal(await readMain(['--out', dir], { stdout, stderr }), 0);
    assert.deepEqual(Buffer.concat(chunks), Buffer.concat([damaged, whole]));
  });

  test('a signal that comes while the reader starts (its flags checked, its store looked at) stops it, exit 0', async () => {
    // Its listeners came after those checks: a SIGTERM then was not heard (by a process, its default
    // action killed it, exit 143), and a follow went on.
    const dir = tempDir();
    append(dir, 'events-2026-11-30.ndjson', [stored('track', 'a')]);
    const stdout = new Writable({ write: (_chunk, _encoding, done) => done() });
    const stderr = { write: (text: string) => assert.fail(text) };
    const reading = readMain(['--out', dir, '--follow'], { stdout, stderr });
    process.emit('SIGTERM');
    assert.equal(await within(reading, 5_000, 'the follow stopped'), 0);
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
