import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { ApiKeySpec } from './auth.ts';
import type { LogLevel } from './log.ts';
import { EVENT_TYPES, type EventType } from './types.ts';

// The command line of the standalone process: flags, their environment variables, and what they mean.

export const NAME = 'segment-endpoint';

// Each flag, its environment variable, and whether it is a switch.
const FLAGS = {
  host: { env: 'SEGMENT_ENDPOINT_HOST', type: 'string' },
  port: { env: 'SEGMENT_ENDPOINT_PORT', type: 'string' },
  cert: { env: 'SEGMENT_ENDPOINT_CERT', type: 'string' },
  key: { env: 'SEGMENT_ENDPOINT_KEY', type: 'string' },
  http: { env: 'SEGMENT_ENDPOINT_HTTP', type: 'boolean' },
  path: { env: 'SEGMENT_ENDPOINT_PATH', type: 'string' },
  'api-key': { env: undefined, type: 'string', multiple: true },
  'api-keys-file': { env: 'SEGMENT_ENDPOINT_API_KEYS_FILE', type: 'string' },
  handlers: { env: 'SEGMENT_ENDPOINT_HANDLERS', type: 'string' },
  out: { env: 'SEGMENT_ENDPOINT_OUT', type: 'string' },
  'max-body-bytes': { env: 'SEGMENT_ENDPOINT_MAX_BODY_BYTES', type: 'string' },
  'max-in-flight': { env: 'SEGMENT_ENDPOINT_MAX_IN_FLIGHT', type: 'string' },
  'max-connections': { env: 'SEGMENT_ENDPOINT_MAX_CONNECTIONS', type: 'string' },
  'shutdown-timeout': { env: 'SEGMENT_ENDPOINT_SHUTDOWN_TIMEOUT', type: 'string' },
  'idempotency-ttl': { env: 'SEGMENT_ENDPOINT_IDEMPOTENCY_TTL', type: 'string' },
  'idempotency-max-entries': { env: 'SEGMENT_ENDPOINT_IDEMPOTENCY_MAX_ENTRIES', type: 'string' },
  'signature-secret': { env: 'SEGMENT_ENDPOINT_SIGNATURE_SECRET', type: 'string' },
  'signature-secret-file': { env: 'SEGMENT_ENDPOINT_SIGNATURE_SECRET_FILE', type: 'string' },
  'signature-legacy-batch': { env: 'SEGMENT_ENDPOINT_SIGNATURE_LEGACY_BATCH', type: 'boolean' },
  'metrics-path': { env: 'SEGMENT_ENDPOINT_METRICS_PATH', type: 'string' },
  'access-log': { env: 'SEGMENT_ENDPOINT_ACCESS_LOG', type: 'boolean' },
  'log-level': { env: 'SEGMENT_ENDPOINT_LOG_LEVEL', type: 'string' },
  help: { env: undefined, type: 'boolean', short: 'h' },
  version: { env: undefined, type: 'boolean', short: 'v' },
} as const;

type Switch = 'help' | 'version' | 'http' | 'access-log' | 'signature-legacy-batch';

export function usage(): string {
  return `Usage: ${NAME} [options]
       ${NAME} test URL --api-key KEY [--settings JSON] [--insecure]   send test events, see test --help

Receives Segment events over HTTPS and, unless --handlers is given, appends each accepted event
to a durable NDJSON file per day under --out.

Options (each also read from the environment variable shown):
  --host HOST              address to listen on (SEGMENT_ENDPOINT_HOST)            [0.0.0.0]
  --port PORT              port to listen on, 0 for any free one (SEGMENT_ENDPOINT_PORT) [8443]
  --cert FILE              PEM certificate chain (SEGMENT_ENDPOINT_CERT)
  --key FILE               PEM private key (SEGMENT_ENDPOINT_KEY)
  --http                   plain HTTP, only behind a TLS-terminating proxy (SEGMENT_ENDPOINT_HTTP=1)
  --path PATH              path events are POSTed to (SEGMENT_ENDPOINT_PATH)      [/]
  --api-keys-file FILE     one "KEY [type,type] [secret=SECRET]" per line, # comments
                           (SEGMENT_ENDPOINT_API_KEYS_FILE)
                           SEGMENT_ENDPOINT_API_KEYS (or SEGMENT_API_KEYS): comma-separated keys,
                           all event types
  --api-key KEY[:TYPES]    accept this API key, optionally only for some event types,
                           e.g. --api-key k1:track,identify (repeatable; visible in ps)
  --handlers FILE          ES module whose default export is { identify?, track?, page?, screen?,
                           group?, alias?, delete? } (SEGMENT_ENDPOINT_HANDLERS)
  --out DIR                where the default store writes events-YYYY-MM-DD.ndjson (SEGMENT_ENDPOINT_OUT) [./data]
  --max-body-bytes N       largest body accepted (SEGMENT_ENDPOINT_MAX_BODY_BYTES) [524288]
  --max-in-flight N        events processed at once; more get 503 + Retry-After
                           (SEGMENT_ENDPOINT_MAX_IN_FLIGHT) [1024]
  --max-connections N      open connections at most; at the cap the longest-idle one is closed
                           to admit a new one (SEGMENT_ENDPOINT_MAX_CONNECTIONS) [2048]
  --shutdown-timeout SECS  on SIGTERM, how long running events may take to finish
                           (SEGMENT_ENDPOINT_SHUTDOWN_TIMEOUT) [10]
  --idempotency-ttl SECS   how long a processed messageId is remembered per API key, so that
                           Segment's retries of it are not processed again (SEGMENT_ENDPOINT_IDEMPOTENCY_TTL) [86400]
  --idempotency-max-entries N  messageIds remembered at most, oldest forgotten first; 0 turns
                           duplicate suppression off (SEGMENT_ENDPOINT_IDEMPOTENCY_MAX_ENTRIES) [100000]
  --signature-secret-file FILE  require X-Segment-Signature or X-Signature (hex HMAC-SHA1 of the
                           body) under the secret in FILE, less one trailing newline
                           (SEGMENT_ENDPOINT_SIGNATURE_SECRET_FILE); a key's own secret=S in
                           --api-keys-file wins
  --signature-secret S     the same, with the secret itself (SEGMENT_ENDPOINT_SIGNATURE_SECRET;
                           the flag is visible in ps)
  --signature-legacy-batch also accept an X-Signature that signs only the first event of a batch
                           (Segment's legacy signing; SEGMENT_ENDPOINT_SIGNATURE_LEGACY_BATCH=1) [off]
  --metrics-path PATH      serve Prometheus metrics here, e.g. /metrics (SEGMENT_ENDPOINT_METRICS_PATH) [off]
  --access-log             one JSON log line per event request (SEGMENT_ENDPOINT_ACCESS_LOG=1)
  --log-level LEVEL        debug, info, warn, error or silent (SEGMENT_ENDPOINT_LOG_LEVEL) [info]
  -h, --help               show this help
  -v, --version            show the version

At least one API key is required. Flags are visible to every user of the host (ps): give secrets
in files of mode 0600 (--api-keys-file, --signature-secret-file) or in the environment instead.
SIGTERM or SIGINT drains: new events get 503, running ones finish, the store is flushed, then the
process exits 0. SIGHUP reads --cert and --key again (one received during start-up, once listening).
`;
}

/** A bad invocation: reported in one line with a hint, exit code 1. */
export class UsageError extends Error {}

export interface CliConfig {
  readonly host: string | undefined;
  readonly port: number | undefined;
  readonly tls: { cert: Buffer; key: Buffer } | undefined;
  /** Where the certificate and key were read from, to read again on SIGHUP. */
  readonly tlsFiles: { cert: string; key: string } | undefined;
  readonly http: boolean;
  readonly path: string | undefined;
  readonly apiKeys: ApiKeySpec[];
  readonly handlers: string | undefined;
  readonly out: string;
  readonly maxBodyBytes: number | undefined;
  readonly maxInFlight: number | undefined;
  readonly maxConnections: number | undefined;
  readonly shutdownTimeoutMs: number | undefined;
  readonly idempotency: { ttlMs: number | undefined; maxEntries: number | undefined } | false;
  readonly signatureSecret: string | undefined;
  readonly signatureLegacyBatch: boolean;
  readonly metricsPath: string | undefined;
  readonly accessLog: boolean;
  readonly logLevel: LogLevel;
}

/** Reads flags, then the environment for what the flags left unset. Throws UsageError. */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): CliConfig | 'help' | 'version' {
  const values = parseFlags(argv);
  if (values.help) return 'help';
  if (values.version) return 'version';
  const get = (flag: Exclude<keyof typeof FLAGS, Switch | 'api-key'>) =>
    values[flag] ?? (FLAGS[flag].env === undefined ? undefined : env[FLAGS[flag].env] || undefined);

  const http = values.http ?? isTrue(env.SEGMENT_ENDPOINT_HTTP);
  const certFile = get('cert');
  const keyFile = get('key');
  let tls: CliConfig['tls'];
  if (!http) {
    if (certFile === undefined || keyFile === undefined) {
      throw new UsageError(
        '--cert and --key are required for HTTPS (or --http behind a TLS-terminating proxy)',
      );
    }
    tls = { cert: readInput(certFile, '--cert'), key: readInput(keyFile, '--key') };
  }

  const apiKeys: ApiKeySpec[] = [];
  for (const spec of values['api-key'] ?? []) apiKeys.push(parseKeySpec(spec, '--api-key'));
  const keysFile = get('api-keys-file');
  if (keysFile !== undefined)
    apiKeys.push(...parseKeysFile(readInput(keysFile, '--api-keys-file').toString()));
  // SEGMENT_API_KEYS is the older name, still read.
  for (const key of `${env.SEGMENT_ENDPOINT_API_KEYS ?? ''},${env.SEGMENT_API_KEYS ?? ''}`.split(',')) {
    if (key.trim() !== '') apiKeys.push({ key: key.trim() });
  }
  if (apiKeys.length === 0) {
    throw new UsageError(
      'no API key: give --api-keys-file, SEGMENT_ENDPOINT_API_KEYS or --api-key (the endpoint never runs open)',
    );
  }

  const maxEntries = optionalInteger(get('idempotency-max-entries'), '--idempotency-max-entries');
  const logLevel = get('log-level') ?? 'info';
  if (!['debug', 'info', 'warn', 'error', 'silent'].includes(logLevel)) {
    throw new UsageError(`--log-level must be debug, info, warn, error or silent, not "${logLevel}"`);
  }
  return {
    host: get('host'),
    port: optionalInteger(get('port'), '--port'),
    tls,
    tlsFiles: tls === undefined ? undefined : { cert: certFile as string, key: keyFile as string },
    http,
    path: get('path'),
    apiKeys,
    handlers: get('handlers'),
    out: get('out') ?? './data',
    maxBodyBytes: optionalInteger(get('max-body-bytes'), '--max-body-bytes'),
    maxInFlight: optionalInteger(get('max-in-flight'), '--max-in-flight'),
    maxConnections: optionalInteger(get('max-connections'), '--max-connections'),
    shutdownTimeoutMs: optionalSeconds(get('shutdown-timeout'), '--shutdown-timeout'),
    idempotency:
      maxEntries === 0
        ? false
        : { ttlMs: optionalSeconds(get('idempotency-ttl'), '--idempotency-ttl'), maxEntries },
    signatureSecret: signatureSecret(get('signature-secret'), get('signature-secret-file')),
    signatureLegacyBatch:
      values['signature-legacy-batch'] ?? isTrue(env.SEGMENT_ENDPOINT_SIGNATURE_LEGACY_BATCH),
    metricsPath: get('metrics-path'),
    accessLog: values['access-log'] ?? isTrue(env.SEGMENT_ENDPOINT_ACCESS_LOG),
    logLevel: logLevel as LogLevel,
  };
}

function parseFlags(argv: readonly string[]) {
  try {
    return parseArgs({ args: [...argv], options: FLAGS, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** `KEY` or `KEY:type,type`. A key never holds ":": it is the username of Basic auth. */
export function parseKeySpec(spec: string, where: string): ApiKeySpec {
  const colon = spec.indexOf(':');
  const key = colon === -1 ? spec : spec.slice(0, colon);
  if (key === '') throw new UsageError(`${where}: an API key must not be empty`);
  if (colon === -1) return { key };
  return { key, types: parseTypes(spec.slice(colon + 1), where) };
}

/** One `KEY [type,type] [secret=SECRET]` per line; blank lines and `#` comments are skipped. */
export function parseKeysFile(text: string): ApiKeySpec[] {
  const specs: ApiKeySpec[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const [key, ...rest] = line.split(/\s+/) as [string, ...string[]];
    const where = `--api-keys-file line ${index + 1}`;
    let types: EventType[] | undefined;
    let signatureSecret: string | undefined;
    for (const token of rest) {
      if (token.startsWith('secret=') && signatureSecret === undefined && token.length > 7) {
        signatureSecret = token.slice(7);
      } else if (types === undefined && !token.includes('=')) {
        types = parseTypes(token, where);
      } else {
        throw new UsageError(`${where}: expected "KEY [type,type] [secret=SECRET]"`);
      }
    }
    if (key.includes(':')) throw new UsageError(`${where}: expected "KEY [type,type] [secret=SECRET]"`);
    specs.push({ key, ...(types && { types }), ...(signatureSecret && { signatureSecret }) });
  });
  return specs;
}

function parseTypes(list: string, where: string): EventType[] {
  const types = list.split(',').map((t) => t.trim().toLowerCase());
  for (const type of types) {
    if (!EVENT_TYPES.includes(type as EventType)) {
      throw new UsageError(`${where}: "${type}" is not an event type (${EVENT_TYPES.join(', ')})`);
    }
  }
  return types as EventType[];
}

/** The secret itself, or read from a file whose one trailing newline (what editors add) is not part of it. */
function signatureSecret(secret: string | undefined, file: string | undefined): string | undefined {
  if (file === undefined) return secret;
  if (secret !== undefined) {
    throw new UsageError('give one of --signature-secret-file and --signature-secret, not both');
  }
  const text = readInput(file, '--signature-secret-file')
    .toString()
    .replace(/\r?\n$/, '');
  if (text === '') throw new UsageError(`--signature-secret-file: ${file} holds an empty secret`);
  return text;
}

function optionalInteger(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag} must be a whole number, not "${value}"`);
  return Number(value);
}

/** Seconds, possibly fractional (`0.5`), as milliseconds. */
function optionalSeconds(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+(?:\.\d+)?$/.test(value))
    throw new UsageError(`${flag} must be a number of seconds, not "${value}"`);
  return Math.round(Number(value) * 1000);
}

function isTrue(value: string | undefined): boolean {
  return value !== undefined && ['1', 'true', 'yes', 'on'].includes(value.toLowerCase());
}

function readInput(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new UsageError(`${flag}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
