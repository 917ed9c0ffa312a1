import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Handlers } from '../dispatch.ts';
import type { EarlierEvents } from '../earlier-events.ts';
import type { Logger } from '../log.ts';
import { modeText } from '../secret-files.ts';
import type { StoreIo } from './file-io.ts';
import { kernelPath } from './file-names.ts';
import type { TornLine } from './file-repair.ts';
import type { NdjsonStore } from './file-store.ts';

// Where the standalone process stores accepted events when no --handlers module is given: one of the
// sinks below, each loaded only when chosen. The pipeline sees only the handlers a sink gives it: a 200
// goes out once the sink has made the event durable.
//
//   file-store.ts   NDJSON files under --out, fdatasync'd in group commits (the default)
//   postgres.ts     a PostgreSQL table, INSERTed in group commits (--postgres)

export interface Sink {
  /** Handlers for every event type that resolve once the event is durable. */
  readonly handlers: Handlers;
  /** False while events cannot be stored (health answers `unavailable`; events get 503). */
  readonly writable: boolean;
  /** Where events go, for the start-up line. */
  readonly where: string;
  /**
   * Reads the events stored just before this start that are worth remembering for `ttlMs` (the file
   * store's), for the duplicate filter: called once, only by a filter that will use them.
   */
  readonly earlierEvents?: ((ttlMs: number) => Promise<EarlierEvents>) | undefined;
  /** Called after each group commit with its time until durable (seconds) and its events: for metrics. */
  onCommit: ((seconds: number, events: number) => void) | undefined;
  /** Stores what was handed over, then lets go of files or connections. */
  close(): Promise<void>;
}

export interface SinkConfig {
  readonly out: string;
  readonly postgres: { readonly url: string; readonly table: string } | undefined;
  /** Worker K of several (--workers), or undefined for the one process. */
  readonly worker: number | undefined;
}

/** The sink the configuration names: PostgreSQL when --postgres is given, else files under --out. */
export async function openSink(config: SinkConfig, log: Logger): Promise<Sink> {
  if (config.postgres !== undefined) {
    const { openPostgresSink } = await import('./postgres-open.ts');
    return openPostgresSink(config.postgres, log);
  }
  const [{ NdjsonStore: Store }, { storeHandlers }, { defaultIo }, recent] = await Promise.all([
    import('./file-store.ts'),
    import('./file-records.ts'),
    import('./file-io.ts'),
    import('./file-recent.ts'),
  ]);
  let started = false;
  const out = kernelPath(config.out);
  const io = saysMadeAgain(defaultIo(), out, log, () => started);
  let store: NdjsonStore;
  try {
    // A worker of --workers is a child of the primary that locked the store for it.
    const lockedFor = config.worker === undefined ? undefined : process.ppid;
    store = await Store.open(out, { worker: config.worker, lockedFor, io });
  } catch (err) {
    throw storeRefused(err, config.out);
  }
  started = true;
  for (const torn of store.recovered) setAside(log, torn);
  store.onRecovered = (torn) => setAside(log, torn); // its file had no room at start-up, and now has
  store.onTorn = (torn) =>
    log.warn(torn, 'a store file was cut in the middle of a line: the part left was set aside');
  if (config.worker === undefined) sayIfOthersWrite(out, log);
  // Read once the torn tails are set aside: its own files, and a worker what its primary measured of the
  // others' (file-recent.ts).
  const others =
    config.worker === undefined
      ? undefined
      : recent.parseMeasuredFiles(process.env[recent.MEASURED_FILES_VARIABLE]);
  const earlierEvents = (ttlMs: number) =>
    recent.recentEvents(io, out, { since: Date.now() - ttlMs, worker: config.worker, others });
  const handlers = storeHandlers(store);
  return {
    handlers,
    earlierEvents,
    get writable() {
      return store.writable;
    },
    where: `events stored in ${resolve(store.dir)}${io.blocking ? ', synced on the event loop (one core)' : ''}`,
    get onCommit() {
      return store.onCommit;
    },
    set onCommit(hook) {
      store.onCommit = hook;
    },
    close: () => store.close(),
  };
}

/**
 * `io`, saying when the store's directory is made again once `started()`: it was removed, or its volume
 * unmounted under the running endpoint, and events now go to a directory on whatever disk holds the path
 * (hidden under the volume once it is mounted again).
 */
function saysMadeAgain(io: StoreIo, out: string, log: Logger, started: () => boolean): StoreIo {
  const mkdir = async (dir: string) => {
    const made = await io.mkdir(dir);
    if (made !== undefined && started()) {
      const msg =
        'the store directory was gone and has been made again: events from now on are stored in the new one (was it removed, or its volume unmounted?)';
      log.warn({ dir: resolve(out), made: resolve(made) }, msg);
    }
    return made;
  };
  return { ...io, mkdir };
}

/**
 * Why the store under `out` cannot start, said of --out. A directory the store cannot write to is
 * refused at start-up: started, it would say healthy and refuse every event. An entry in it that is in
 * the way (a directory named like a day's file) is named instead. Anything but a file system's error is
 * returned as it is.
 */
export function storeRefused(err: unknown, out: string): unknown {
  const { code, path, holder } = err as { code?: unknown; path?: unknown; holder?: unknown };
  if (code === 'SEG_STORE_IN_USE')
    return new Error(`--out ${out} is in use by process ${holder}: one endpoint writes a store`);
  if (code === 'SEG_STORE_FOREIGN_FILE' || code === 'SEG_STORE_NOT_A_FILE') {
    return new Error(`--out ${out}: ${(err as Error).message}`);
  }
  if (typeof code !== 'string') return err;
  const inside = typeof path === 'string' && resolve(path) !== kernelPath(out);
  const said = inside
    ? `--out ${out}: cannot use ${path} (${code})`
    : `--out ${out} is not writable (${code})`;
  return new Error(said, { cause: err });
}

/**
 * Start-up repair of every file under `out` (every worker's, with --workers: the primary's, before any
 * worker starts), refused as openSink refuses a store it cannot use. Resolves with the variables that
 * tell each worker what the others' files held then (file-recent.ts, `measureFiles`).
 */
export async function repairStoreFiles(out: string, log: Logger): Promise<Record<string, string>> {
  const dir = kernelPath(out);
  const [{ makeDirectory, repairStore }, { nodeIo }, recent] = await Promise.all([
    import('./file-repair.ts'),
    import('./file-io.ts'),
    import('./file-recent.ts'),
  ]);
  // A file it cannot repair for want of room is left to its worker, which repairs its own at start and
  // starts all the same (a full disk is a state the store recovers from).
  const deferred = new Map<string, number>();
  // Locked for the primary's life: its workers write under it.
  const recovered = await makeDirectory(nodeIo, dir)
    .then(() => nodeIo.lock?.(dir))
    .then(() => repairStore(dir, { deferred }))
    .catch((err: unknown) => {
      throw storeRefused(err, out);
    });
  for (const torn of recovered) setAside(log, torn);
  sayIfOthersWrite(dir, log);
  const measured = await recent.measureFiles(nodeIo, dir, deferred).catch((err: unknown) => {
    log.warn({ err }, "the store's files could not be measured: each worker reads back its own only");
    return '';
  });
  return { [recent.MEASURED_FILES_VARIABLE]: measured };
}

/**
 * An --out every user of the host may write to, said at start: the store writes no file it does not own
 * and follows no link, but another user could still plant the day's file before it does, and have
 * events refused (503) until it is removed.
 */
function sayIfOthersWrite(out: string, log: Logger): void {
  const mode = statSync(out, { throwIfNoEntry: false })?.mode ?? 0;
  if ((mode & 0o002) === 0) return;
  log.warn(
    {},
    `--out ${out} is writable by every user of this host (mode ${modeText(mode)}): they could plant files where events are stored; chmod 700 it`,
  );
}

const setAside = (log: Logger, torn: TornLine) =>
  log.warn(torn, 'a partial line left by a crash was set aside');
