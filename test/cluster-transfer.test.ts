// How --workers hands its configuration files to a worker: a piece at a time, the next once the worker
// has taken the one before, so that node:cluster's new connections, handed over on the same channel,
// never wait behind a whole keys file; and how the worker puts the pieces back together.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { test } from 'node:test';
import { sendTo, type ToWorker, WORKER_VARIABLE } from '../src/cluster/messages.ts';
import { PIECE_BYTES as PIECE, sendFiles } from '../src/cluster/transfer.ts';
import { ROOT, TSX } from './helpers-spawn.ts';
import { waitUntil } from './helpers-wait.ts';

/** A worker as the primary sees it: what was sent to it, and its acknowledgements to make. */
function fakeWorker() {
  const sent: ToWorker[] = [];
  const emitter = new EventEmitter();
  const worker = Object.assign(emitter, {
    connected: true,
    isConnected: () => worker.connected,
    send: (message: ToWorker) => sent.push(message),
  });
  /** The worker's acknowledgement of the last piece sent to it. */
  const taken = () => {
    const last = sent.filter((message) => message.se === 'piece').at(-1);
    worker.emit('message', { se: 'piece!', n: last?.se === 'piece' ? last.n : 0 });
  };
  return { worker: worker as unknown as Worker & { connected: boolean }, sent, taken };
}

/** A file's bytes as the messages carry them: each base64 decoded alone, in order. */
function received(sent: readonly ToWorker[], path: string): Buffer {
  return Buffer.concat(
    sent.flatMap((message) => {
      if (message.se === 'piece' && message.path === path) return [Buffer.from(message.base64, 'base64')];
      if (message.se === 'files' || message.se === 'reload') {
        return [Buffer.from(message.files[path] ?? '', 'base64')];
      }
      return [];
    }),
  );
}

test('--workers: a file goes a piece at a time, each once the worker took the one before', () => {
  const { worker, sent, taken } = fakeWorker();
  const keys = randomBytes(2 * PIECE + 1000);
  sendTo(worker, { se: 'files', files: new Map() });
  sent.length = 0;
  sendTo(worker, { se: 'reload', files: new Map([['/keys', keys]]) });
  assert.deepEqual(
    sent.map((message) => message.se),
    ['piece'],
    'the next waits for the first to be taken',
  );
  sendTo(worker, { se: 'ping' });
  assert.equal(sent.at(-1)?.se, 'ping', 'what is not a file goes at once');
  taken();
  taken();
  assert.deepEqual(
    sent.map((message) => message.se),
    ['piece', 'ping', 'piece', 'reload'],
  );
  assert.ok(received(sent, '/keys').equals(keys), 'whole, each piece decoded alone');
  taken(); // one too many: nothing is waiting, nothing is sent
  assert.equal(sent.length, 4);
});

test("--workers: only the worker's acknowledgement of the piece it was sent sends the next", () => {
  // A --handlers module may write on the channel: its junk must not undo the pacing.
  const { worker, sent, taken } = fakeWorker();
  sendTo(worker, { se: 'files', files: new Map([['/keys', randomBytes(3 * PIECE)]]) });
  for (const junk of [{ se: 'piece!' }, { se: 'piece!', n: 2 }, { se: 'piece!', n: '1' }, null, 'piece!']) {
    worker.emit('message', junk);
  }
  assert.equal(sent.length, 1);
  taken();
  assert.deepEqual(
    sent.map((message) => message.se === 'piece' && message.n),
    [1, 2],
  );
});

test('--workers: files sent while others are on their way follow them, in order', () => {
  const { worker, sent, taken } = fakeWorker();
  const [first, second] = [randomBytes(PIECE + 1), randomBytes(PIECE + 2)];
  sendTo(worker, { se: 'files', files: new Map([['/keys', first]]) });
  sendTo(worker, { se: 'reload', files: new Map([['/keys', second]]) });
  for (let i = 0; i < 4; i++) taken();
  assert.deepEqual(
    sent.map((message) => message.se),
    ['piece', 'files', 'piece', 'reload'],
  );
  assert.ok(received(sent.slice(0, 2), '/keys').equals(first));
  assert.ok(received(sent.slice(2), '/keys').equals(second));
  // Small files, and an empty one, go whole in the message itself.
  sendTo(worker, {
    se: 'reload',
    files: new Map([
      ['/cert', Buffer.from('pem')],
      ['/secret', Buffer.alloc(0)],
    ]),
  });
  assert.deepEqual(sent.at(-1), { se: 'reload', files: { '/cert': 'cGVt', '/secret': '' } });
});

test('--workers: a worker gets its files once, before any reload', () => {
  // It may not listen yet (its modules loading): a piece it never takes would hold its files behind it.
  const { worker, sent } = fakeWorker();
  sendTo(worker, { se: 'reload', files: new Map([['/keys', randomBytes(PIECE + 1)]]) });
  assert.deepEqual(sent, [], 'the files it asks for are the ones reloaded');
  sendTo(worker, { se: 'files', files: new Map([['/keys', Buffer.from('k1')]]) });
  assert.deepEqual(sent, [{ se: 'files', files: { '/keys': 'azE=' } }]);
  // Once: asked again (junk on the channel), no copy goes to hold its reloads behind it.
  sendTo(worker, { se: 'files', files: new Map([['/keys', randomBytes(3 * PIECE)]]) });
  assert.equal(sent.length, 1);
});

test('--workers: what waits for a worker whose channel closed is dropped', () => {
  const { worker, sent, taken } = fakeWorker();
  sendFiles(worker, { se: 'files', files: new Map([['/keys', randomBytes(3 * PIECE)]]) }, (m) =>
    sent.push(m),
  );
  sendFiles(worker, { se: 'reload', files: new Map([['/keys', Buffer.from('x')]]) }, (m) => sent.push(m));
  worker.connected = false;
  taken();
  assert.equal(sent.length, 1, 'nothing more once it is gone: not the rest, nor what waited behind it');
  worker.connected = true; // (as it never is again: the queue was dropped, not kept)
  taken();
  assert.equal(sent.length, 1);
});

test('--workers: a worker takes every piece, and the pieces go with the message that ends them, never with the next', async () => {
  // A reload sent while a worker loads its modules reaches no listener of its own (it is sent again):
  // its pieces must not be put in front of the next file's.
  const script = `
    import { primaryFiles, workerLink } from ${JSON.stringify(join(ROOT, 'src', 'cluster', 'worker.ts'))};
    const files = await primaryFiles(process.env);
    const text = (path) => files.get(path)?.toString('base64');
    process.send({ test: 'files', keys: text('/keys') });
    process.on('message', (message) => {
      if (message.test !== 'link') return;
      const signals = { onSignal() {}, onReload() { process.send({ test: 'reloaded', keys: text('/keys') }); } };
      workerLink(process.env, signals, files);
      process.send({ test: 'linked' });
    });`;
  const child = spawn(process.execPath, [...TSX, '--input-type=module', '-e', script], {
    env: { ...process.env, [WORKER_VARIABLE]: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const heard: Array<{ se?: string; test?: string; keys?: string }> = [];
  child.on('message', (message: (typeof heard)[number]) => heard.push(message));
  const worker = { on: child.on.bind(child), isConnected: () => child.connected } as unknown as Worker;
  const post = (message: ToWorker) => void child.send(message);
  const acks = () => heard.filter((message) => message.se === 'piece!').length;
  const said = (what: string) => heard.find((message) => message.test === what);
  const saying = (what: string) =>
    waitUntil(
      () => said(what) !== undefined,
      () => `the child's "${what}"`,
    );
  try {
    const [atStart, dropped, next] = [
      randomBytes(2 * PIECE + 5),
      randomBytes(PIECE + 7),
      randomBytes(PIECE + 9),
    ];
    await waitUntil(
      () => heard.some((message) => message.se === 'files?'),
      () => 'files?',
    );
    sendFiles(worker, { se: 'files', files: new Map([['/keys', atStart]]) }, post);
    await saying('files');
    assert.equal(said('files')?.keys, atStart.toString('base64'));
    assert.equal(acks(), 2);
    sendFiles(worker, { se: 'reload', files: new Map([['/keys', dropped]]) }, post);
    await waitUntil(
      () => acks() === 3,
      () => "the unheard reload's piece taken",
    );
    child.send({ test: 'link' }); // after that reload's last message, on the same channel
    await saying('linked');
    sendFiles(worker, { se: 'reload', files: new Map([['/keys', next]]) }, post);
    await saying('reloaded');
    assert.equal(said('reloaded')?.keys, next.toString('base64'));
    assert.equal(acks(), 4);
  } finally {
    child.kill();
  }
});
