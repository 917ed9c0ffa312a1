import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { pbkdf2 } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, fstatSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { coresAllowed } from '../src/cores.ts';
import { createHandler, NdjsonStore, storeHandlers } from '../src/index.ts';
import { silentLogger } from '../src/log.ts';
import { loopIo, type StoreIo } from '../src/sinks/file-io.ts';
import { API_KEY, tempDirs, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';

// The group commit on the event loop's thread (`loopIo`), what a one-core process stores with: the
// lines appended in one turn of the loop go out in one write and one fdatasync, and a disk that refuses
// a write refuses the events, as on the thread pool.

const tempDir = tempDirs('loop');
const pbkdf2Async = promisify(pbkdf2);
const AT = new Date('2026-11-30T12:00:00.000Z');
const FILE = 'events-2026-11-30.ndjson';

describe('the group commit on the event loop', () => {
  test('the lines appended in one turn of the loop share one commit, in their order, each durable when its promise resolves', async () => {
    const dir = tempDir();
    const store = await NdjsonStore.open(dir, { io: loopIo });
    // Each from a callback of its own, as requests are read: all run in the same turn of the loop.
    const appended = await new Promise<Array<Promise<void>>>((done) => {
      const promises: Array<Promise<void>> = [];
      for (let n = 0; n < 20; n++) {
        setImmediate(() => {
          promises.push(store.appendLine(JSON.stringify({ n }), AT));
          if (promises.length === 20) done(promises);
        });
      }
    });
    await Promise.all(appended);
    // Committed at the end of the first callback instead, the first line would have gone alone.
    assert.deepEqual(store.stats, { records: 20, commits: 1, failures: 0 });
    const lines = readFileSync(join(dir, FILE), 'utf8').split('\n');
    assert.deepEqual(
      lines.slice(0, -1).map((line) => JSON.parse(line).n),
      [...Array(20).keys()],
    );
    assert.equal(lines.at(-1), '');

    await store.appendLine('{"n":20}', AT);
    assert.deepEqual(store.stats, { records: 21, commits: 2, failures: 0 });
    await store.close();
  });

  test('lines that keep coming turn after turn share one commit: it waits for a turn that adds none', async () => {
    // Under load the senders' next requests arrive while a turn works, to be read by the next turn's
    // poll: committed at the end of each turn, 50 connections made commits of ~33 events; now ~49.
    const dir = tempDir();
    const store = await NdjsonStore.open(dir, { io: loopIo });
    // Each batch of lines from a socket's data, as requests are read: a ball sent back and forth
    // between two sockets of this process, each end adding a batch when it gets it: one a turn.
    const arrivals = async (turns: number, each: number) => {
      const appended: Array<Promise<void>> = [];
      const add = (socket: Socket, done: () => void) =>
        socket.on('data', () => {
          for (let n = 0; n < each; n++) appended.push(store.appendLine('{"n":0}', AT));
          if (appended.length < turns * each) socket.write('.');
          else done();
        });
      let served: Socket | undefined;
      const ends = createNetServer((socket) => {
        served = socket;
      }).listen(0, '127.0.0.1');
      await once(ends, 'listening');
      const socket = connect((ends.address() as AddressInfo).port, '127.0.0.1');
      await once(ends, 'connection');
      await new Promise<void>((done) => {
        add(socket, done);
        add(served as Socket, done);
        socket.write('.');
      });
      socket.destroy();
      ends.close();
      await Promise.all(appended);
      return appended.length;
    };
    assert.equal(await arrivals(4, 5), 20);
    assert.deepEqual(store.stats, { records: 20, commits: 1, failures: 0 });
    // Lines that never stop coming are committed all the same, 256 at most a commit. Two a turn: a turn
    // that adds only the line that began the wait ends it, so one a turn would commit each line alone.
    const sizes: number[] = [];
    store.onCommit = (_seconds, events) => sizes.push(events);
    assert.equal(await arrivals(300, 2), 600);
    assert.equal(store.stats.records, 620);
    assert.ok(Math.max(...sizes) <= 256, `commits of ${sizes.join(', ')} events`);
    await store.close();
  });

  test('its write and its sync are done when they return, before any other code runs', async () => {
    const fd = openSync(join(tempDir(), 'f'), 'a');
    const bytes = Buffer.from('{"n":1}\n');
    // The thread pool's four threads kept busy: a write handed to one of them could not be done yet.
    const busy = Array.from({ length: 4 }, () => pbkdf2Async('key', 'salt', 100_000, 64, 'sha512'));
    const written = loopIo.write(fd, bytes, 0, bytes.length);
    assert.equal(fstatSync(fd).size, bytes.length, 'in the file before the promise is awaited');
    await Promise.all(busy);
    assert.equal(await written, bytes.length);
    closeSync(fd);
    await assert.rejects(loopIo.write(fd, bytes, 0, bytes.length), { code: 'EBADF' });
    await assert.rejects(loopIo.fdatasync(fd), { code: 'EBADF' });
  });

  test('events through the endpoint are stored, and answered 200 once durable', async () => {
    const dir = tempDir();
    const store = await NdjsonStore.open(dir, { io: loopIo });
    const handler = createHandler({ apiKeys: [API_KEY], handlers: storeHandlers(store), log: silentLogger });
    const sent = [trackEvent(), trackEvent(), trackEvent()];
    const answers = await Promise.all(sent.map((body) => inject(handler, { body })));
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200],
    );
    const stored = readdirSync(dir)
      .filter((name) => name.endsWith('.ndjson'))
      .flatMap((name) => readFileSync(join(dir, name), 'utf8').trim().split('\n'));
    assert.deepEqual(
      stored.map((line) => JSON.parse(line).event.messageId).sort(),
      sent.map((e) => e.messageId).sort(),
    );
    await store.close();
  });

  test('a write the disk refuses (/dev/full: ENOSPC) refuses its lines; the next write that works is stored', async () => {
    const dir = tempDir();
    // Every write to the file of a day long past goes to the full device, and fails as the kernel fails it.
    const full = openSync('/dev/full', 'w');
    const past = new Set<number>();
    const io: StoreIo = {
      ...loopIo,
      open: async (path, flags) => {
        const fd = await loopIo.open(path, flags);
        if (path.endsWith('events-2020-01-01.ndjson')) past.add(fd);
        return fd;
      },
      write: async (fd, ...rest) => loopIo.write(past.has(fd) ? full : fd, ...rest),
      close: async (fd) => {
        past.delete(fd); // its number is free for the next file opened
        return loopIo.close(fd);
      },
    };
    const store = await NdjsonStore.open(dir, { io });
    await assert.rejects(store.appendLine('{"n":1}', new Date('2020-01-01T12:00:00.000Z')), {
      code: 'ENOSPC',
    });
    assert.equal(store.writable, false);
    assert.deepEqual(store.stats, { records: 0, commits: 0, failures: 1 });

    await store.appendLine('{"n":2}', AT);
    assert.equal(store.writable, true);
    assert.equal(readFileSync(join(dir, FILE), 'utf8'), '{"n":2}\n');
    await store.close();
    closeSync(full);
  });
});

describe('which group commit a store uses', () => {
  const io = new URL('../src/sinks/file-io.ts', import.meta.url).href;
  const probe = `const { defaultIo, loopIo } = await import(${JSON.stringify(io)});
    process.stdout.write(defaultIo() === loopIo ? 'loop' : 'thread pool');`;
  const run = (cores: string[]) =>
    execFileSync(
      'taskset',
      ['-c', cores.join(','), process.execPath, '--import', 'tsx', '--input-type=module', '-e', probe],
      { encoding: 'utf8' },
    );

  const tasksetMissing = spawnSync('taskset', ['--version']).error !== undefined && 'no taskset here';

  test('a process that may run on one core only commits on the event loop', { skip: tasksetMissing }, () => {
    assert.equal(run(['0']), 'loop');
  });

  test('a process with more cores commits on the thread pool', {
    skip: tasksetMissing || (coresAllowed() < 2 && 'one core here'),
  }, () => {
    assert.equal(run(['0', '1']), 'thread pool');
  });

  test('the cores counted are those of the affinity list, ranges and single cores', () => {
    const status = join(tempDir(), 'status');
    writeFileSync(
      status,
      'Name:\tnode\nCpus_allowed:\tf0d\nCpus_allowed_list:\t0-3,8,10-11\nMems_allowed:\t1\n',
    );
    assert.equal(coresAllowed(status), 7);
  });
});
