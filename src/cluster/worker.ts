import type { Signals } from '../cli.ts';
import type { Metrics, MetricsSnapshot } from '../metrics.ts';
import type { EndpointServer } from '../server.ts';
import { isOurs, type ToPrimary, type ToWorker, WORKER_VARIABLE } from './messages.ts';

// A worker of --workers: the single process's code, plus what it takes from its primary (the TLS ticket
// keys, drain, reload) and what it gives (its URL, its counts).

const GATHER_TIMEOUT_MS = 2_000; // 2 s: past it, /metrics answers with this worker's own counts
// 1 s: how often a worker tells the primary its counts, all a worker killed outright (kill -9, the OOM
// killer) can take with it; /metrics asks every worker for fresh ones anyway.
const REPORT_MS = 1_000;
const REFUSED_GRACE_MS = 5_000; // 5 s: how long a worker that cannot start waits for its primary to end it

export interface WorkerLink {
  /** This worker's number, 1 to N; the one that replaces it has the same. */
  readonly worker: number;
  /**
   * Connects the server to the primary: waits for the shared ticket keys (before listening: no session
   * is issued under keys of this worker's own).
   */
  join(endpoint: EndpointServer, tls: boolean): Promise<void>;
  /** Tells the primary this worker takes events at `url`, and `where` they go. */
  listening(url: string, where: string): void;
  /** Tells the primary why this worker cannot start (the line one process would print); resolves once sent. */
  refused(line: string): Promise<void>;
}

/**
 * The worker's side of the channel, listening from the start: a drain or reload the primary sends while
 * this worker is still starting goes through `signals` as an early signal would.
 */
export function workerLink(env: NodeJS.ProcessEnv, signals: Signals, files: Map<string, Buffer>): WorkerLink {
  const worker = Number(env[WORKER_VARIABLE]);
  if (!Number.isInteger(worker) || worker < 1) throw new Error(`${WORKER_VARIABLE} is not a worker number`);
  const send = (message: ToPrimary) => process.send?.(message);
  const gathering = new Map<number, (snapshot: MetricsSnapshot) => void>();
  let server: { readonly endpoint: EndpointServer; readonly tls: boolean } | undefined;
  let keys: Buffer | undefined;
  let keysArrived: () => void = () => {};
  const apply = () => {
    if (server?.tls === true && keys !== undefined) server.endpoint.setTicketKeys(keys);
  };
  process.on('message', (message: unknown) => {
    if (!isOurs<ToWorker>(message)) return;
    switch (message.se) {
      case 'tickets':
        keys = Buffer.from(message.keys, 'base64');
        apply();
        keysArrived();
        break;
      case 'drain':
        signals.onSignal('SIGTERM');
        break;
      case 'reload':
        keep(files, message);
        signals.onReload(Object.keys(message.files));
        break;
      case 'snapshot?': {
        const metrics = server?.endpoint.handler.metrics;
        if (metrics !== undefined && server !== undefined) {
          send({
            se: 'snapshot',
            id: message.id,
            snapshot: metrics.snapshot(server.endpoint.handler.inFlight),
          });
        }
        break;
      }
      case 'metrics':
        gathering.get(message.id)?.(message.snapshot);
        gathering.delete(message.id);
        break;
      case 'ping':
        send({ se: 'pong' });
        break;
    }
  });
  return {
    worker,
    join(endpoint, tls) {
      server = { endpoint, tls };
      const metrics = endpoint.handler.metrics;
      if (metrics !== undefined) {
        metrics.gather = gatherer(gathering, send);
        const report = () => {
          // Not once the primary is gone (this worker is then on its way out): a send would throw.
          if (process.connected)
            send({ se: 'counts', snapshot: metrics.snapshot(endpoint.handler.inFlight) });
        };
        setInterval(report, REPORT_MS).unref();
      }
      const arrived = new Promise<void>((resolve) => {
        keysArrived = resolve;
      });
      send({ se: 'tickets?' });
      return arrived;
    },
    listening(url, where) {
      // node:cluster hands a worker that starts listening the keys of the first one that did (its
      // server data): a worker started after a rotation puts the current ones back.
      apply();
      send({ se: 'listening', url, where });
    },
    refused,
  };
}

/**
 * Tells the primary why this worker cannot start. The primary ends this worker once it has read why (it
 * kills it): exiting first, the worker's exit could reach the primary before its message, and be taken
 * for a death to replace it after. Waited for REFUSED_GRACE_MS at most, should the primary not act.
 */
function refused(line: string): Promise<void> {
  return new Promise((resolve) => {
    setTimeout(resolve, REFUSED_GRACE_MS);
    process.send?.({ se: 'refused', line } satisfies ToPrimary);
  });
}

// 10 s without a word: a primary of ours answers at once, and sends a large file's pieces one after another
const FILES_TIMEOUT_MS = 10_000;

/**
 * The files of the configuration as the primary read them (at its start, and a certificate it loaded on
 * SIGHUP since), for a worker of --workers; `undefined` for a process that is not one. A worker that
 * replaces another must serve the keys and the certificate the others serve, not what the files hold
 * now: a keys file edited for the next start, a renewed certificate that did not load.
 */
export async function primaryFiles(env: NodeJS.ProcessEnv): Promise<Map<string, Buffer> | undefined> {
  if (env[WORKER_VARIABLE] === undefined || process.send === undefined) return undefined;
  const files = new Map<string, Buffer>();
  process.on('message', collectPieces);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      process.off('message', take);
      reject(new Error('the primary did not send the configuration files'));
    }, FILES_TIMEOUT_MS);
    function take(message: unknown) {
      if (isOurs<ToWorker>(message) && message.se === 'piece') timer.refresh();
      if (!isOurs<ToWorker>(message) || message.se !== 'files') return;
      clearTimeout(timer);
      process.off('message', take);
      keep(files, message);
      resolve();
    }
    process.on('message', take);
    process.send?.({ se: 'files?' } satisfies ToPrimary);
  });
  return files;
}

// A file's pieces come before the `files` or `reload` message that ends it (transfer.ts). That message
// takes the pieces received before it, even when no other listener handles it (a reload sent while this
// worker loads its modules, sent again once it listens): lost pieces never reach the next file.
const pieces = new Map<string, Buffer[]>();
const ended = new WeakMap<object, ReadonlyMap<string, Buffer[]>>();

/**
 * Listens for the whole life of the worker, first: before any other listener sees a message. Each piece
 * is acknowledged, and the primary sends the next.
 */
function collectPieces(message: unknown): void {
  if (!isOurs<ToWorker>(message)) return;
  if (message.se === 'piece') {
    const before = pieces.get(message.path);
    if (before === undefined) pieces.set(message.path, [Buffer.from(message.base64, 'base64')]);
    else before.push(Buffer.from(message.base64, 'base64'));
    // Not once the primary is gone (this worker is then on its way out): a send would throw, and one
    // that fails meanwhile (EPIPE) is told to the callback rather than thrown.
    const taken: ToPrimary = { se: 'piece!', n: message.n };
    if (process.connected) process.send?.(taken, undefined, undefined, () => {});
  } else if (message.se === 'files' || message.se === 'reload') {
    ended.set(message, new Map(pieces));
    pieces.clear();
  }
}

/** The files `message` ends, whole, into `files`. */
function keep(files: Map<string, Buffer>, message: ToWorker & { se: 'files' | 'reload' }): void {
  const before = ended.get(message);
  for (const [path, base64] of Object.entries(message.files)) {
    files.set(path, Buffer.concat([...(before?.get(path) ?? []), Buffer.from(base64, 'base64')]));
  }
}

/** What `/metrics` asks for: the sum of every worker's counts, which the primary gathers. */
function gatherer(
  gathering: Map<number, (snapshot: MetricsSnapshot) => void>,
  send: (message: ToPrimary) => void,
): NonNullable<Metrics['gather']> {
  let next = 0;
  return (own) =>
    new Promise((resolve, reject) => {
      const id = ++next;
      gathering.set(id, resolve);
      send({ se: 'gather', id, snapshot: own });
      setTimeout(() => {
        if (gathering.delete(id)) reject(new Error('the primary did not answer'));
      }, GATHER_TIMEOUT_MS).unref();
    });
}
