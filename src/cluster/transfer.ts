import type { Worker } from 'node:cluster';
import type { ToPrimary, ToWorker } from './messages.ts';

// The configuration files go to a worker of --workers a piece at a time, the next once the worker has
// taken the one before ('piece!'). node:cluster hands new connections to its workers on the same
// channel: behind the whole of a keys file of 500,000 keys (31 MB of base64 a worker), each waited until
// its worker had read all of it, 0.3-0.45 s. A worker parses and decodes each message whole, answering
// nothing meanwhile: a piece is small enough that this is a few milliseconds.

/** Files for a worker to load, as the primary keeps them: `files` at its start, `reload` on SIGHUP. */
export interface FilesToSend {
  readonly se: 'files' | 'reload';
  readonly files: ReadonlyMap<string, Buffer>;
}

/** `files`, or those of them at `only`. */
export function filesToSend(
  se: FilesToSend['se'],
  files: ReadonlyMap<string, Buffer>,
  only?: readonly string[],
): FilesToSend {
  const chosen = new Map<string, Buffer>();
  for (const path of only ?? files.keys()) {
    const bytes = files.get(path);
    if (bytes !== undefined) chosen.set(path, bytes);
  }
  return { se, files: chosen };
}

/** A piece of a file: 1 Mi characters of base64 (a multiple of 3 bytes, so each decodes alone). */
export const PIECE_BYTES = 768 * 1024;

/**
 * The messages that carry `message`, each made as it is sent (no file is encoded whole): the pieces of
 * each file but its last, each `numbered`, then `message` with each file's last piece in it.
 */
export function* wireMessages(
  message: FilesToSend,
  numbered: () => number,
): Generator<ToWorker, void, undefined> {
  const files: Record<string, string> = {};
  for (const [path, bytes] of message.files) {
    let at = 0;
    for (; bytes.length - at > PIECE_BYTES; at += PIECE_BYTES) {
      const base64 = bytes.toString('base64', at, at + PIECE_BYTES);
      yield { se: 'piece', n: numbered(), path, base64 };
    }
    files[path] = bytes.toString('base64', at);
  }
  yield { se: message.se, files };
}

/**
 * What waits to go to one worker, in order; the pieces sent to it so far, and the number of the one not
 * taken yet, if any. Only its own acknowledgement sends the next: not one a --handlers module might send.
 */
interface Outbox {
  readonly queue: Array<Generator<ToWorker, void, undefined>>;
  pieces: number;
  awaited: number | undefined;
}

const outboxes = new WeakMap<Worker, Outbox>();

/**
 * Sends `message` to `worker` behind the files sent to it before, by `post`: a piece at a time, each
 * once the one before is taken. Dropped once the worker's channel has closed (it is replaced, and the
 * one that replaces it asks for its files).
 */
export function sendFiles(worker: Worker, message: FilesToSend, post: (message: ToWorker) => void): void {
  let outbox = outboxes.get(worker);
  // A worker gets its files first, when it asks, which is once it listens for pieces: a reload before
  // would be lost, its first piece never acknowledged, and the files held behind it. Those it will get
  // are the ones the reload loaded. And once: asked again (by a --handlers module on the channel), a
  // whole copy a time would hold its reloads behind them.
  if (outbox === undefined && message.se === 'reload') return;
  if (outbox !== undefined && message.se === 'files') return;
  if (outbox === undefined) {
    const created: Outbox = { queue: [], pieces: 0, awaited: undefined };
    outboxes.set(worker, created);
    worker.on('message', (taken: unknown) => {
      const said = taken as Partial<ToPrimary> | null;
      if (said?.se !== 'piece!' || said.n !== created.awaited) return;
      created.awaited = undefined;
      pump(worker, created, post);
    });
    outbox = created;
  }
  const numbered = outbox;
  outbox.queue.push(wireMessages(message, () => ++numbered.pieces));
  pump(worker, outbox, post);
}

function pump(worker: Worker, outbox: Outbox, post: (message: ToWorker) => void): void {
  while (outbox.awaited === undefined) {
    const current = outbox.queue[0];
    if (current === undefined) return;
    if (!worker.isConnected()) {
      outbox.queue.length = 0;
      return;
    }
    const next = current.next();
    if (next.done === true) {
      outbox.queue.shift();
      continue;
    }
    post(next.value);
    if (next.value.se === 'piece') outbox.awaited = next.value.n;
  }
}
