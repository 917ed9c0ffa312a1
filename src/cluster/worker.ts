import type { Signals } from '../cli.ts';
import type { MetricsSnapshot } from '../metrics.ts';
import type { EndpointServer } from '../server.ts';
import { isOurs, type ToPrimary, type ToWorker, WORKER_VARIABLE } from './messages.ts';

// A worker of --workers: the single process's code, plus what it takes from its primary (the TLS ticket
// keys, drain, reload) and what it gives (its URL, its counts).

const GATHER_TIMEOUT_MS = 2_000; // 2 s: past it, /metrics answers with this worker's own counts

export interface WorkerLink {
  /** This worker's number, 1 to N; the one that replaces it has the same. */
  readonly worker: number;
  /**
   * Connects the server to the primary: waits for the shared ticket keys (before listening: no session
   * is issued under keys of this worker's own), then acts on the primary's messages.
   */
  join(endpoint: EndpointServer, signals: Signals, tls: boolean): Promise<void>;
  /** Tells the primary this worker takes events at `url`, and `where` they go. */
  listening(url: string, where: string): void;
}

export function workerLink(env: NodeJS.ProcessEnv): WorkerLink {
  const worker = Number(env[WORKER_VARIABLE]);
  if (!Number.isInteger(worker) || worker < 1) throw new Error(`${WORKER_VARIABLE} is not a worker number`);
  const send = (message: ToPrimary) => process.send?.(message);
  return {
    worker,
    join: (endpoint, signals, tls) => join(endpoint, signals, tls, send),
    listening: (url, where) => send({ se: 'listening', url, where }),
  };
}

function join(
  endpoint: EndpointServer,
  signals: Signals,
  tls: boolean,
  send: (message: ToPrimary) => void,
): Promise<void> {
  const gathering = new Map<number, (snapshot: MetricsSnapshot) => void>();
  const metrics = endpoint.handler.metrics;
  let keysArrived: () => void = () => {};
  const keys = new Promise<void>((resolve) => {
    keysArrived = resolve;
  });
  process.on('message', (message: unknown) => {
    if (!isOurs<ToWorker>(message)) return;
    switch (message.se) {
      case 'tickets':
        if (tls) endpoint.setTicketKeys(Buffer.from(message.keys, 'base64'));
        keysArrived();
        break;
      case 'drain':
        signals.onSignal('SIGTERM');
        break;
      case 'reload':
        signals.onReload();
        break;
      case 'snapshot?':
        if (metrics !== undefined) {
          send({ se: 'snapshot', id: message.id, snapshot: metrics.snapshot(endpoint.handler.inFlight) });
        }
        break;
      case 'metrics':
        gathering.get(message.id)?.(message.snapshot);
        gathering.delete(message.id);
        break;
    }
  });
  if (metrics !== undefined) {
    let next = 0;
    metrics.gather = (own) =>
      new Promise((resolve, reject) => {
        const id = ++next;
        gathering.set(id, resolve);
        send({ se: 'gather', id, snapshot: own });
        setTimeout(() => {
          if (gathering.delete(id)) reject(new Error('the primary did not answer'));
        }, GATHER_TIMEOUT_MS).unref();
      });
  }
  send({ se: 'tickets?' });
  return keys;
}
