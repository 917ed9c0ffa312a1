import type { Signals } from '../cli.ts';
import type { Metrics, MetricsSnapshot } from '../metrics.ts';
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
   * is issued under keys of this worker's own).
   */
  join(endpoint: EndpointServer, tls: boolean): Promise<void>;
  /** Tells the primary this worker takes events at `url`, and `where` they go. */
  listening(url: string, where: string): void;
}

/**
 * The worker's side of the channel, listening from the start: a drain or reload the primary sends while
 * this worker is still starting goes through `signals` as an early signal would.
 */
export function workerLink(env: NodeJS.ProcessEnv, signals: Signals): WorkerLink {
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
        signals.onReload();
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
    }
  });
  return {
    worker,
    join(endpoint, tls) {
      server = { endpoint, tls };
      const metrics = endpoint.handler.metrics;
      if (metrics !== undefined) metrics.gather = gatherer(gathering, send);
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
  };
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
