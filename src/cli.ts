#!/usr/bin/env node
import { readFileSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NAME, parseConfig, UsageError, usage } from './config.ts';
import type { Handlers } from './dispatch.ts';
import { jsonLogger } from './log.ts';
import { createServer, type EndpointServer } from './server.ts';
import { NdjsonStore, storeHandlers } from './store.ts';
import { testMain } from './tester/run.ts';

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
 * bad invocation (one line on stderr with a hint).
 */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (argv[0] === 'test') return testMain(argv.slice(1));
  let config: ReturnType<typeof parseConfig>;
  try {
    config = parseConfig(argv, env);
  } catch (err) {
    return fail(err);
  }
  if (config === 'help') {
    process.stdout.write(usage());
    return 0;
  }
  if (config === 'version') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }

  const log = jsonLogger(config.logLevel);
  // Listen for signals before anything is up: a SIGTERM during start-up must drain too, not kill.
  let early: NodeJS.Signals | undefined;
  let onSignal = (signal: NodeJS.Signals) => {
    early = signal;
  };
  process.on('SIGTERM', (signal) => onSignal(signal));
  process.on('SIGINT', (signal) => onSignal(signal));
  // A partner's handler can throw from a timer or leave a promise rejected, outside any request.
  // Crashing would cut every connection and every event in flight; log it and keep serving.
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception'));
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  let store: NdjsonStore | undefined;
  let endpoint: EndpointServer;
  let url: string;
  try {
    let handlers: Handlers;
    if (config.handlers !== undefined) {
      handlers = await loadHandlers(config.handlers);
    } else {
      store = await openStore(config.out);
      for (const torn of store.recovered) {
        log.warn(torn, 'a partial line left by a crash was set aside');
      }
      handlers = storeHandlers(store);
    }
    endpoint = createServer({
      handlers,
      apiKeys: config.apiKeys,
      host: config.host,
      port: config.port,
      tls: config.tls,
      http: config.http,
      path: config.path,
      maxBodyBytes: config.maxBodyBytes,
      signatureSecret: config.signatureSecret,
      metricsPath: config.metricsPath,
      accessLog: config.accessLog,
      maxInFlight: config.maxInFlight,
      maxConnections: config.maxConnections,
      shutdownTimeoutMs: config.shutdownTimeoutMs,
      idempotency: config.idempotency,
      ready: store === undefined ? undefined : readiness(store),
      log,
    });
    const metrics = endpoint.handler.metrics;
    if (store !== undefined && metrics !== undefined)
      store.onCommit = (seconds, events) => metrics.commit(seconds, events);
    url = await endpoint.listen();
  } catch (err) {
    return fail(err);
  }
  const where =
    store === undefined ? `handlers from ${config.handlers}` : `events stored in ${resolve(store.dir)}`;
  process.stdout.write(`${NAME} ${version()} listening on ${url} (${where})\n`);
  const files = config.tlsFiles;
  if (files !== undefined) {
    // Renewed certificates (certbot, a secrets agent) are picked up on SIGHUP, without a restart:
    // new connections get the new pair, open ones keep theirs. A bad pair is refused and logged.
    process.on('SIGHUP', () => {
      try {
        endpoint.reloadTls({ cert: readFileSync(files.cert), key: readFileSync(files.key) });
        log.info({ cert: files.cert }, 'certificate reloaded');
      } catch (err) {
        log.error(
          { cert: files.cert, reason: (err as Error).message },
          'certificate reload failed; keeping the current one',
        );
      }
    });
  }

  return new Promise<number>((done) => {
    let stopping = false;
    onSignal = (signal: NodeJS.Signals) => {
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
    if (early !== undefined) onSignal(early);
  });
}

/**
 * The store in `dir`. One that cannot be written to (read-only, not permitted, not a directory) is refused
 * at start-up: started, it would say healthy and refuse every event.
 */
async function openStore(dir: string): Promise<NdjsonStore> {
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
