import type { Worker } from 'node:cluster';
import type { MetricsSnapshot } from '../metrics.ts';
import { type FilesToSend, sendFiles } from './transfer.ts';

// What the primary of --workers and its workers tell each other over node:cluster's IPC channel. Every
// message carries `se` (its kind), so that node's own cluster messages are never mistaken for ours.

/** From the primary to a worker. */
export type ToWorker =
  /** The TLS session ticket keys (base64, 48 bytes) every worker uses: sent on request and on rotation. */
  | { readonly se: 'tickets'; readonly keys: string }
  /** Stop taking events, finish those in flight, exit 0 (what SIGTERM does to one process). */
  | { readonly se: 'drain' }
  /**
   * The files the configuration was read from (path to base64), as the primary read them at start and
   * since: a worker reads them from here, not from the disk, where they may have changed.
   */
  | { readonly se: 'files'; readonly files: Readonly<Record<string, string>> }
  /** Load these files (as `files`), which the primary read again on SIGHUP and loaded: the certificate and key, the keys file, or both. */
  | { readonly se: 'reload'; readonly files: Readonly<Record<string, string>> }
  /**
   * The next piece of a file's base64, ahead of the `files` or `reload` that ends it (transfer.ts): `n`
   * counts the pieces sent to this worker, its acknowledgement says it back.
   */
  | { readonly se: 'piece'; readonly n: number; readonly path: string; readonly base64: string }
  /** Send your counts, for the sum another worker was asked for. */
  | { readonly se: 'snapshot?'; readonly id: number }
  /** The sum over every worker, answering `gather`. */
  | { readonly se: 'metrics'; readonly id: number; readonly snapshot: MetricsSnapshot }
  /** Is its event loop turning? (Watchdog) */
  | { readonly se: 'ping' };

/** From a worker to the primary. */
export type ToPrimary =
  /** Starting: the files of the configuration, please. */
  | { readonly se: 'files?' }
  /** Ready for the ticket keys: the server exists and does not listen yet. */
  | { readonly se: 'tickets?' }
  /**
   * It cannot start: what a single process would say on stderr (`line`, a bad module, a port in use, a
   * store it cannot write). The primary says it once, for every worker would say the same.
   */
  | { readonly se: 'refused'; readonly line: string }
  /** Listening: the URL it takes events at, and where they go (for the start-up line). */
  | { readonly se: 'listening'; readonly url: string; readonly where: string }
  /** `/metrics` was asked for: sum every worker's counts, this one's (`snapshot`) included. */
  | { readonly se: 'gather'; readonly id: number; readonly snapshot: MetricsSnapshot }
  /** This worker's counts, answering `snapshot?`. */
  | { readonly se: 'snapshot'; readonly id: number; readonly snapshot: MetricsSnapshot }
  /** This worker's counts, told every REPORT_MS: what the sums keep of it if it dies. */
  | { readonly se: 'counts'; readonly snapshot: MetricsSnapshot }
  /** Its event loop turns, answering `ping`. */
  | { readonly se: 'pong' }
  /** Piece `n` was taken: the next, please (transfer.ts). */
  | { readonly se: 'piece!'; readonly n: number };

/** One of ours, or not (node's own, or anything else sent on the channel). */
export function isOurs<T extends { se: string }>(message: unknown): message is T {
  return (
    typeof message === 'object' && message !== null && typeof (message as { se?: unknown }).se === 'string'
  );
}

/** The variable that tells a worker its number (1 to N): the same for the worker that replaces it. */
export const WORKER_VARIABLE = 'SEGMENT_ENDPOINT_WORKER';

/**
 * A message to a worker, unless its channel has closed. A worker that died a moment ago may still look
 * connected: the write then fails (EPIPE), which is told to the callback, not thrown, and its 'exit'
 * comes next. Files go behind those sent before, a piece at a time (transfer.ts).
 */
export function sendTo(worker: Worker, message: Outgoing): void {
  if (!worker.isConnected()) return;
  if ('files' in message) sendFiles(worker, message, (piece) => post(worker, piece));
  else post(worker, message);
}

/** What the primary sends: files as it keeps them, never as they travel (their pieces must not be mixed). */
export type Outgoing = Exclude<ToWorker, { se: 'files' | 'reload' | 'piece' }> | FilesToSend;

const post = (worker: Worker, message: ToWorker) => worker.send(message, undefined, undefined, () => {});
