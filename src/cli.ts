#!/usr/bin/env node
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { WORKER_VARIABLE } from './cluster/messages.ts';
import type { WorkerLink } from './cluster/worker.ts';
import { type CliConfig, NAME, parseConfig, UsageError, usage } from './config.ts';
import { keepingReads, sentOrRead } from './config-keys.ts';
import { ofTheFlag } from './config-said.ts';
import { jsonLogger, type Logger, withFields } from './log.ts';
import { logProcessEvents } from './process-events.ts';
import { readableByOthers } from './secret-files.ts';
import type { Running } from './start.ts';

// Only what runs before the signal listeners are in place is imported statically: the server, the store
// and the tester (with the validators they bring) load after, so that window is node's own start-up.

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
  // Subcommands load only their own code: the endpoint's start-up never pays for them.
  if (argv[0] === 'test') return (await import('./tester/command.ts')).testMain(argv.slice(1));
  if (argv[0] === 'read') return (await import('./read/main.ts')).runRead(argv.slice(1));
  if (argv[0] === 'load') return (await import('./load/command.ts')).loadMain(argv.slice(1));
  const signals = listenForSignals(env);
  // A worker reads no file (its primary sends them): a Ctrl-C that reaches it with its primary drains.
  if (env[WORKER_VARIABLE] !== undefined) listenForStop(signals);
  let config: ReturnType<typeof parseConfig>;
  // What the configuration was read from: a primary of --workers hands it to its workers, which read
  // their configuration from it rather than from the files (cluster/worker.ts, primaryFiles).
  let files: Map<string, Buffer>;
  const modes = new Map<string, number>();
  try {
    const given = process.send === undefined ? undefined : await workerFiles(env);
    files = given ?? new Map();
    const readFile = keepingReads(given, files, modes);
    config = parseConfig(argv, env, readFile);
  } catch (err) {
    return fail(err);
  }
  if (env[WORKER_VARIABLE] === undefined) listenForStop(signals);
  if (config === 'help' || config === 'version') {
    process.stdout.write(config === 'help' ? usage() : `${version()}\n`);
    return 0;
  }
  let log = jsonLogger(config.logLevel);
  logProcessEvents(() => log);
  // Said once: by the single process, or by the primary of --workers.
  if (env[WORKER_VARIABLE] === undefined) {
    for (const said of config.unused) log.warn({}, config.said(said));
    for (const said of readableByOthers(config.secretFiles, modes)) log.warn({}, config.said(said));
  }
  let link: WorkerLink | undefined;
  if (config.workers > 1) {
    const { default: cluster } = await import('node:cluster');
    if (cluster.isPrimary) {
      try {
        return await (await import('./cluster/primary.ts')).runPrimary(config, argv, log, signals, files);
      } catch (err) {
        return fail(err, config);
      }
    }
    link = (await import('./cluster/worker.ts')).workerLink(env, signals, files);
    config = (await import('./cluster/port.ts')).withChosenPort(config, env);
    log = withFields(log, { worker: link.worker });
  }
  const { listen, reloader, start } = await import('./start.ts');
  let running: Running;
  let url: string;
  try {
    running = await start(config, log, link?.worker);
    await link?.join(running.endpoint, config.tlsFiles !== undefined);
    url = await listen(running.endpoint, config);
  } catch (err) {
    if (link === undefined) return fail(err, config);
    // Said by the primary, once for all its workers.
    await link.refused(failure(err, config));
    return 1;
  }
  if (link === undefined) {
    process.stdout.write(`${NAME} ${version()} listening on ${url} (${running.where})\n`);
    // The same in the JSON log, which a log shipper reads alone (with --workers, the primary says it).
    log.info({ url, version: version(), where: running.where }, 'listening');
  } else link.listening(url, running.where);
  // A worker loads what its primary read again and loaded (it sends the files with the reload).
  const read = link === undefined ? undefined : sentOrRead(files);
  signals.onReload = reloader(config, running.endpoint, log, read);
  if (signals.reloadEarly !== undefined) {
    // The certificate was read at start-up, perhaps before the renewal this SIGHUP announced.
    log.info({}, 'SIGHUP received during start-up: reloading now that the server is up');
    signals.onReload(signals.reloadEarly === 'all' ? undefined : [...signals.reloadEarly]);
  }
  // A second signal (a terminal's, a service manager's) does not cut a worker's drain: its primary decides.
  return drainOnSignal(signals, running, log, link === undefined);
}

/** A forked process's configuration files from its primary, when it is a worker of --workers. */
async function workerFiles(env: NodeJS.ProcessEnv): Promise<Map<string, Buffer> | undefined> {
  return (await import('./cluster/worker.ts')).primaryFiles(env);
}

export interface Signals {
  /** A SIGTERM or SIGINT received before the server was up. */
  early: NodeJS.Signals | undefined;
  /** A reload received before the server was up: of every file, or (a worker's) of those its primary sent. */
  reloadEarly: 'all' | Set<string> | undefined;
  onSignal: (signal: NodeJS.Signals) => void;
  /** `paths`: a worker's reload loads the files its primary sent, not the others (all when absent). */
  onReload: (paths?: readonly string[]) => void;
}

/**
 * SIGHUP first, before anything slow (files, modules, the store): until a listener exists, its default
 * action ends the process (exit 129), so a `systemctl reload` during start-up would stop it. It is
 * remembered and acted on once the server is up.
 */
function listenForSignals(env: NodeJS.ProcessEnv): Signals {
  // A worker's primary decides when its start has lasted long enough (it may be told to drain twice).
  const worker = env[WORKER_VARIABLE] !== undefined;
  const signals: Signals = {
    early: undefined,
    reloadEarly: undefined,
    onSignal: (signal) => {
      // Start-up held (a module that waits, a database that does not answer): a second signal ends it.
      if (signals.early !== undefined && !worker) {
        process.stderr.write(`${NAME}: second signal during start-up: exiting\n`);
        process.exit(1);
      }
      signals.early = signal;
    },
    onReload: (paths) => {
      const before = signals.reloadEarly;
      signals.reloadEarly =
        paths === undefined || before === 'all' ? 'all' : new Set([...(before ?? []), ...paths]);
    },
  };
  process.on('SIGHUP', () => signals.onReload());
  return signals;
}

/**
 * SIGTERM and SIGINT once the configuration is read: a SIGTERM must drain, not kill, once anything
 * could be in flight. Until then their default action ends the process, which stops a start blocked
 * reading a file (a --cert named on a pipe nobody writes to) that no listener could ever run in. From
 * here, the first is remembered and acted on once the server is up.
 */
function listenForStop(signals: Signals): void {
  process.on('SIGTERM', (signal) => signals.onSignal(signal));
  process.on('SIGINT', (signal) => signals.onSignal(signal));
}

/**
 * The first SIGTERM or SIGINT drains and resolves 0 (1 if closing fails); a second one resolves 1 when
 * `secondExits`.
 */
function drainOnSignal(
  signals: Signals,
  { endpoint, close }: Running,
  log: Logger,
  secondExits: boolean,
): Promise<number> {
  return new Promise<number>((done) => {
    let stopping = false;
    signals.onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        if (!secondExits) return;
        log.warn({ signal }, 'second signal: exiting without waiting');
        done(1);
        return;
      }
      stopping = true;
      log.info({ signal, inFlight: endpoint.handler.inFlight }, 'draining');
      endpoint
        .close()
        .then(close)
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

function fail(err: unknown, config?: CliConfig): number {
  process.stderr.write(failure(err, config));
  return 1;
}

/**
 * What a start that failed says on stderr: one line, and a hint when the invocation was wrong. A value
 * that came from the environment is said of its variable (`config.said`).
 */
function failure(err: unknown, config?: CliConfig): string {
  const message = err instanceof Error ? err.message : String(err);
  // The library's own checks (a path, a bound) name an option as `options.NAME`: said of its flag.
  const said = err instanceof RangeError || err instanceof TypeError ? ofTheFlag(message) : undefined;
  const hint = err instanceof UsageError || said !== undefined ? `\nTry '${NAME} --help'.` : '';
  const line = said ?? message;
  return `${NAME}: ${config === undefined ? line : config.said(line)}${hint}\n`;
}

// Run when executed, not when imported by tests: as a script (node dist/cli.js, or dist/cli, the bin's
// symlink, node segment-endpoint.mjs) or as `make sea`'s single executable (scripts/sea.ts defines this).
// There node puts the binary's own path in argv[1], and node:cluster starts a --workers worker with one
// argument more, the primary's argv[1] (as for `node <script> ARGS`): a worker's arguments start later.
declare const SEGMENT_ENDPOINT_SEA: true | undefined;
if (typeof SEGMENT_ENDPOINT_SEA !== 'undefined') {
  import('node:cluster')
    .then(({ default: cluster }) => main(process.argv.slice(cluster.isWorker ? 3 : 2)))
    .then((code) => process.exit(code));
} else if (runAsScript(process.argv[1])) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}

function runAsScript(given: string | undefined): boolean {
  return given !== undefined && [given, `${given}.js`].some((path) => fileUrl(path) === import.meta.url);
}

function fileUrl(path: string): string | undefined {
  try {
    return pathToFileURL(realpathSync(path)).href;
  } catch {
    return undefined; // no such file
  }
}
