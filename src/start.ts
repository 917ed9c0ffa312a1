import type { ApiKeySpec } from './auth.ts';
import { reloadCertificate } from './certificate.ts';
import { type CliConfig, type ReloadedFiles, UsageError } from './config.ts';
import type { Handlers } from './dispatch.ts';
import { readEarlier } from './earlier-events.ts';
import { loadHandlers } from './handlers-module.ts';
import { EARLIER, type IdempotencyStore, type MemoryIdempotencyOptions } from './idempotency.ts';
import { memoryFilter } from './idempotency-option.ts';
import { reloadKeysInSlices } from './keys-reload.ts';
import type { Logger } from './log.ts';
import { OPTIONS } from './option-table.ts';
import type { HandlerOptions } from './options.ts';
import { reloadSecretFile } from './secret-reload.ts';
import { checkServerOptions, createServer, type EndpointServer } from './server.ts';
import type { Settings } from './settings.ts';
import type { SettingsSchema } from './settings-schema.ts';
import type { SignatureSecrets } from './signature.ts';
import { openSink, type Sink } from './sinks/sink.ts';

// What the standalone process starts once its signal listeners are in place (cli.ts): the handlers (a
// --handlers module, or a sink), the server, and what SIGHUP does.

export interface Running {
  readonly endpoint: EndpointServer;
  /** Where events are stored; undefined with --handlers. */
  readonly sink: Sink | undefined;
  /** What the start-up line says events go to. */
  readonly where: string;
  /** Once the server has drained: stores what the sink holds, lets go of connections. */
  close(): Promise<void>;
}

/**
 * The handlers, then the server (not listening yet: a worker of several first takes the shared TLS
 * ticket keys). `worker` is the worker's number with --workers, else undefined.
 */
export async function start(config: CliConfig, log: Logger, worker?: number): Promise<Running> {
  let sink: Sink | undefined;
  let handlers: Handlers;
  let settingsSchema: SettingsSchema<Settings> | undefined;
  let where: string;
  // A refused option is said before the partner's module is loaded, the store's directory made or a
  // database touched.
  // (Without the duplicate filter: the flags' bounds checked its options, and a check must not build it.)
  checkServerOptions({ ...config.options, handlers: {}, log, idempotency: false });
  if (config.handlers !== undefined) {
    ({ handlers, settingsSchema } = await loadHandlers(config.handlers));
    where = `handlers from ${config.handlers}`;
  } else {
    sink = await openSink({ out: config.out, postgres: config.postgres, worker }, log);
    handlers = sink.handlers;
    where = sink.where;
  }
  const shared = await sharedFilter(config, log);
  const options = { ...config.options, idempotency: filterOption(config, shared, sink, log) };
  const ready =
    sink === undefined && shared === undefined
      ? undefined
      : () => (sink?.writable ?? true) && (shared?.ready ?? true);
  const endpoint = createServer({ ...options, handlers, settingsSchema, log, ready });
  const metrics = endpoint.handler.metrics;
  if (sink !== undefined && metrics !== undefined) {
    metrics.countStore();
    sink.onCommit = (seconds, events) => metrics.commit(seconds, events);
  }
  const close = async () => {
    await sink?.close();
    await shared?.close();
  };
  return { endpoint, sink, where, close };
}

/** --idempotency-redis: the duplicate filter every process shares, in Redis; loaded only when given. */
async function sharedFilter(config: CliConfig, log: Logger) {
  if (config.idempotencyRedis === undefined) return undefined;
  const { openRedisIdempotency } = await import('./idempotency-redis.ts');
  const memory = config.options.idempotency as { readonly ttlMs?: number } | undefined; // from the flags
  const ttlMs = memory?.ttlMs ?? OPTIONS['idempotency.ttlMs'].default;
  return openRedisIdempotency(config.idempotencyRedis, { ttlMs, log });
}

/**
 * The duplicate filter: --idempotency-redis's, shared; else the in-memory one, which remembers the events
 * the store kept from just before this start, so that Segment's retries of those a crash left unanswered
 * are not stored again.
 */
export function filterOption(
  config: CliConfig,
  shared: IdempotencyStore | undefined,
  sink: Sink | undefined,
  log: Logger,
): HandlerOptions['idempotency'] {
  const own = config.options.idempotency; // from the flags: the in-memory store's options, or false
  if (shared !== undefined) return shared;
  const read = sink?.earlierEvents;
  if (read === undefined || own === false) return own;
  const memory = memoryFilter(own as MemoryIdempotencyOptions | undefined);
  memory?.[EARLIER](readEarlier(() => read(memory.ttlMs), log));
  return memory ?? false;
}

/**
 * What SIGHUP does once the server is up: the certificate read again (reloadCertificate; new connections
 * get the new pair, open ones keep theirs), and the keys of --api-keys-file (reloadKeysInSlices; from
 * the request after they are all loaded, requests answered meanwhile with the current ones), and the
 * secrets of --signature-secret-file (from the next request). Given `paths`, a worker's reload loads only
 * what its primary sent (what the primary loaded). Resolves once done.
 */
export function reloader(
  config: ReloadedFiles,
  endpoint: EndpointServer,
  log: Logger,
  read?: (path: string) => Buffer,
): (paths?: readonly string[]) => Promise<void> {
  const { tlsFiles: files, keysFile, signatureSecretFile: secretFile } = config;
  const reloadAll = async (paths?: readonly string[]) => {
    // A worker's message names what its primary loaded: a file it does not name (or that there is none
    // of, a certificate over plain HTTP) is neither loaded nor said, once for each worker.
    const sent = (path: string | undefined) =>
      paths === undefined || (path !== undefined && paths.includes(path));
    const load = (cert: Buffer, key: Buffer) => endpoint.reloadTls({ cert, key });
    if (sent(files?.cert) && (await reloadCertificate(config, log, load, read))) {
      log.info({ cert: files?.cert }, 'certificate reloaded');
    }
    // In slices: a keys file of 100,000 keys held every request for ~0.5 s, a million for ~7 s.
    const loadKeys = (keys: ApiKeySpec[]) => endpoint.handler.loadApiKeys(keys);
    if (sent(keysFile?.path) && (await reloadKeysInSlices(keysFile, log, loadKeys, read))) {
      log.info({ file: keysFile?.path }, 'API keys reloaded');
    }
    const loadSecret = (secrets: SignatureSecrets) => endpoint.handler.setSignatureSecret(secrets);
    if (sent(secretFile) && (await reloadSecretFile(secretFile, log, loadSecret, read))) {
      log.info({ file: secretFile }, 'signature secret reloaded');
    }
  };
  // Each step logs its own failures; anything else is logged here, not an unhandled rejection's exit.
  return (paths) => reloadAll(paths).catch((err: unknown) => log.error({ err }, 'SIGHUP: reload failed'));
}

/**
 * Listens as configured; a refusal of the address is said of the flag that gave it (a port in use, a
 * host that is not this machine's or does not resolve, a low port without the right), as every bad
 * value is.
 */
export async function listen(endpoint: EndpointServer, config: CliConfig): Promise<string> {
  try {
    return await endpoint.listen();
  } catch (err) {
    const { code } = err as NodeJS.ErrnoException;
    const host = config.options.host ?? OPTIONS.host.default;
    const port = config.options.port ?? OPTIONS.port.default;
    const said = LISTEN_ERRORS[code ?? ''];
    if (said === undefined) throw err;
    throw new UsageError(said(host, port));
  }
}

const LISTEN_ERRORS: Record<string, (host: string, port: number) => string> = {
  EADDRINUSE: (host, port) => `--port ${port}: in use on ${host} by another process (EADDRINUSE)`,
  EACCES: (_, port) =>
    port < 1024
      ? `--port ${port}: a port below 1024 needs root or CAP_NET_BIND_SERVICE (EACCES)`
      : `--port ${port}: not permitted (EACCES)`,
  EADDRNOTAVAIL: (host) => `--host ${host}: not an address of this machine (EADDRNOTAVAIL)`,
  ENOTFOUND: (host) => `--host ${host}: no such host (ENOTFOUND)`,
  EAI_AGAIN: (host) => `--host ${host}: cannot be resolved now (EAI_AGAIN)`,
};
