#!/usr/bin/env node
import { readFileSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type CliConfig, NAME, parseConfig, UsageError, usage } from './config.ts';
import type { Handlers } from './dispatch.ts';
import { jsonLogger, type Logger } from './log.ts';
import type { EndpointServer } from './server.ts';
import type { NdjsonStore } from './store.ts';

// Only what runs before the signal listeners are in place is imported statically: the server, the store
// and the tester (with the validators they bring) load after, so that window is node's own start-up.

async function loadHandlers(file: string): Promise<Handlers> {
  let mod: { default?: unknown };
  try {
    mod = await import(pathToFileURL(resolve(file)).href);
  } catch (err) {
    throw new UsageError(`--handlers: cannot load ${file}: ${(err as Error).message}`);
  }
  if (typeof mod.default !== 'object' || mod.default === null) {
    throw new UsageError(`--handlers: ${file} must export default { identify?, track?, ... }`);
  }
  return mod.default as Handlers;
}

// The single-file bundle (`make dist`) has no package.json beside it, so esbuild's `define` writes the
// version in at build time; from source or dist/cli.js this is undeclared and package.json is read.
declare const SEGMENT_ENDPOINT_VERSION: string | undefined;

export function version(): string {
  if (typeof SEGMENT_ENDPOINT_VERSION === 'string') return SEGMENT_ENDPOINT_VERSION;
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/**
 * Runs the endpoint until SIGTERM/SIGINT. Resolves with the exit code: 0 after a clean drain, 1 for a
 * bad invocation (one line on stderr with a hint). An exception nothing catches exits 1 at once.
 */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (argv[0] === 'test') return (await import('./tester/command.ts')).testMain(argv.slice(1));
  const signals = listenForSignals();
  let config: ReturnType<typeof parseConfig>;
  try {
    config = parseConfig(argv, env);
  } catch (err) {
    return fail(err);
  }
  if (config === 'help' || config === 'version') {
    process.stdout.write(config === 'help' ? usage() : `${version()}\n`);
    return 0;
  }
  const log = jsonLogger(config.logLevel);
  exitOnUncaught(log);
  let running: Running;
  try {
    running = await start(config, log);
  } catch (err) {
    return fail(err);
  }
  const { endpoint, store, url } = running;
  const where =
    store === undefined ? `handlers from ${config.handlers}` : `events stored in ${resolve(store.dir)}`;
  process.stdout.write(`${NAME} ${version()} listening on ${url} (${where})\n`);
  signals.onReload = certificateReloader(config.tlsFiles, endpoint, log);
  if (signals.reloadEarly) {
    // The certificate was read at start-up, perhaps before the renewal this SIGHUP announced.
    log.info({}, 'SIGHUP received during start-up: reloading now that the server is up');
    signals.onReload();
  }
  return drainOnSignal(signals, running, log);
}

interface Signals {
  /** A SIGTERM or SIGINT received before the server was up. */
  early: NodeJS.Signals | undefined;
  reloadEarly: boolean;
  onSignal: (signal: NodeJS.Signals) => void;
  onReload: () => void;
}

/**
 * Signals first, before anything slow (files, modules, the store): until a listener exists, SIGHUP's
 * default action ends the process (exit 129), so a `systemctl reload` during start-up would stop it,
 * and a SIGTERM must drain, not kill. Both are remembered and acted on once the server is up.
 */
function listenForSignals(): Signals {
  const signals: Signals = {
    early: undefined,
    reloadEarly: false,
    onSignal: (signal) => {
      signals.early = signal;
    },
    onReload: () => {
      signals.reloadEarly = true;
    },
  };
  process.on('SIGTERM', (signal) => signals.onSignal(signal));
  process.on('SIGINT', (signal) => signals.onSignal(signal));
  process.on('SIGHUP', () => signals.onReload());
  return signals;
}

/**
 * An exception nothing caught (a partner's handler throwing from a timer) or a promise rejected with
 * nobody to hear it: logged, then the process exits 1. What state it left behind cannot be known, and
 * the process manager restarts a process that exits non-zero. Events already answered were processed
 * to the end; those in flight were never acknowledged, so Segment retries them.
 */
function exitOnUncaught(log: Logger): void {
  const fatal = (msg: string) => (err: unknown) => {
    log.error({ err, exitCode: 1 }, msg);
    process.exit(1);
  };
  process.on('uncaughtException', fatal('uncaught exception'));
  process.on('unhandledRejection', fatal('unhandled rejection'));
}

interface Running {
  readonly endpoint: EndpointServer;
  readonly store: NdjsonStore | undefined;
  readonly url: string;
}

/** The handlers (a --handlers module, else the store under --out), the server, listening. */
async function start(config: CliConfig, log: Logger): Promise<Running> {
  const { createServer } = await import('./server.ts');
  let store: NdjsonStore | undefined;
  let handlers: Handlers;
  if (config.handlers !== undefined) {
    handlers = await loadHandlers(config.handlers);
  } else {
    const { storeHandlers } = await import('./store.ts');
    store = await openStore(config.out);
    for (const torn of store.recovered) log.warn(torn, 'a partial line left by a crash was set aside');
    handlers = storeHandlers(store);
  }
  const ready = store === undefined ? undefined : readiness(store);
  const endpoint = createServer({ ...config.options, handlers, log, ready });
  const metrics = endpoint.handler.metrics;
  if (store !== undefined && metrics !== undefined) {
    store.onCommit = (seconds, events) => metrics.commit(seconds, events);
  }
  return { endpoint, store, url: await endpoint.listen() };
}

/** The first SIGTERM or SIGINT drains and resolves 0 (1 if closing fails); a second one resolves 1. */
function drainOnSignal(signals: Signals, { endpoint, store }: Running, log: Logger): Promise<number> {
  return new Promise<number>((done) => {
    let stopping = false;
    signals.onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        log.warn({ signal }, 'second signal: exiting without waiting');
        done(1);
        return;
      }
      stopping = true;
      log.info({ signal, inFlight: endpoint.handler.inFlight }, 'draining');
      endpoint
        .close()
        .then(() => store?.close())
        .then(
          () => {
            log.info({ signal }, 'stopped');
            done(0);
          },
          (err: unknown) => {
            log.error({ err }, 'shutdown failed');
            done(1);
          },
        );
    };
    if (signals.early !== undefined) signals.onSignal(signals.early);
  });
}

/**
 * What SIGHUP does once the server is up. Renewed certificates (certbot, a secrets agent) are picked up
 * without a restart: new connections get the new pair, open ones keep theirs. A bad pair is refused and
 * logged. Over plain HTTP there is nothing to reload, and a reload must not stop the process either.
 */
function certificateReloader(
  files: CliConfig['tlsFiles'],
  endpoint: EndpointServer,
  log: Logger,
): () => void {
  if (files === undefined) return () => log.info({}, 'SIGHUP: no certificate to reload (plain HTTP)');
  return () => {
    try {
      endpoint.reloadTls({ cert: readFileSync(files.cert), key: readFileSync(files.key) });
      log.info({ cert: files.cert }, 'certificate reloaded');
    } catch (err) {
      log.error(
        { cert: files.cert, reason: (err as Error).message },
        'certificate reload failed; keeping the current one',
      );
    }
  };
}

/**
 * The store in `dir`. One that cannot be written to (read-only, not permitted, not a directory) is refused
 * at start-up: started, it would say healthy and refuse every event.
 */
async function openStore(dir: string): Promise<NdjsonStore> {
  const { NdjsonStore } = await import('./store.ts');
  try {
    return await NdjsonStore.open(dir);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    throw typeof code === 'string'
      ? new Error(`--out ${dir} is not writable (${code})`, { cause: err })
      : err;
  }
}

/** Health says unavailable while the store cannot write. */
const readiness = (store: NdjsonStore) => () => store.writable;

function fail(err: unknown): number {
  const message = err instanceof Error ? err.message : String(err);
  const hint = err instanceof UsageError ? `\nTry '${NAME} --help'.` : '';
  process.stderr.write(`${NAME}: ${message}${hint}\n`);
  return 1;
}

// Run when executed (node dist/cli.js, or the bin's symlink), not when imported by tests.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
