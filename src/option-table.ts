import { describeValue } from './errors.ts';
import { MAX_DEPTH } from './json.ts';
import { SCALE_OPTIONS } from './option-table-scale.ts';
import { MAX_TIMER_MS, TIMEOUT_OPTIONS } from './option-table-timeouts.ts';

// Every option of createHandler, createServer and the command line, each once: its flag and environment
// variable, its default (the one source of defaults: units in the comments), its bounds and its --help
// line. Read by the CLI's parser and usage text (config.ts), by the validation of the library's options
// (options.ts, server.ts) and by README's option tables (scripts/options-doc.ts, which takes each
// option's meaning from the JSDoc of HandlerOptions and ServerOptions). test/option-table.test.ts holds
// the table, the interfaces and README together.

export interface OptionRow {
  /** An option of createHandler (so of createServer too), of createServer only, or of the CLI only. */
  readonly scope: 'handler' | 'server' | 'cli';
  readonly flag?: string; // with its argument's name, as --help shows it
  readonly short?: string;
  readonly env?: string; // read when the flag is absent (for a repeatable flag: added to it)
  readonly envAlias?: string; // a name `env` was once read under, still read after it
  /**
   * How the CLI reads the flag's text, when not as is: a whole number, seconds (fractions allowed) given
   * to the library in milliseconds, a switch (its variable set to 1, true, yes or on), a repeatable
   * flag, or the file name of an ES module whose default export is the option.
   */
  readonly cli?: 'integer' | 'seconds' | 'switch' | 'list' | 'module';
  readonly default?: string | number | boolean; // in the library's unit: ms for a name ending in Ms
  readonly min?: number;
  readonly max?: number;
  readonly choices?: readonly string[]; // the only values accepted
  readonly help?: string; // the flag's line in --help
}

export { MAX_TIMER_MS };

const env = (name: string) => `SEGMENT_ENDPOINT_${name}`;

/** In the order --help lists the flags; README's tables keep it within each scope. */
export const OPTIONS = {
  host: {
    scope: 'server',
    flag: '--host HOST',
    env: env('HOST'),
    default: '0.0.0.0',
    help: 'address to listen on',
  },
  port: {
    scope: 'server',
    flag: '--port PORT',
    env: env('PORT'),
    cli: 'integer',
    default: 8443,
    min: 0,
    max: 65535,
    help: 'port to listen on, 0 for any free one',
  },
  tls: { scope: 'server' },
  cert: { scope: 'cli', flag: '--cert FILE', env: env('CERT'), help: 'PEM certificate chain' },
  key: { scope: 'cli', flag: '--key FILE', env: env('KEY'), help: 'PEM private key' },
  http: {
    scope: 'server',
    flag: '--http',
    env: env('HTTP'),
    cli: 'switch',
    default: false,
    help: 'plain HTTP, only behind a TLS-terminating proxy',
  },
  path: {
    scope: 'handler',
    flag: '--path PATH',
    env: env('PATH'),
    default: '/',
    help: 'path events are POSTed to',
  },
  handlers: {
    scope: 'handler',
    flag: '--handlers FILE',
    env: env('HANDLERS'),
    cli: 'module',
    help: 'ES module whose default export is { identify?, track?, page?, screen?, group?, alias?, delete? }; without it, events are stored under --out',
  },
  settingsSchema: { scope: 'handler' },
  out: {
    scope: 'cli',
    flag: '--out DIR',
    env: env('OUT'),
    default: './data',
    help: 'where the default store writes events-YYYY-MM-DD.ndjson',
  },
  ...SCALE_OPTIONS,
  trackingApi: { scope: 'handler', default: true },
  healthPath: { scope: 'handler', default: '/health' },
  livePath: { scope: 'handler', default: '/live' },
  ready: { scope: 'handler' },
  metricsPath: {
    scope: 'handler',
    flag: '--metrics-path PATH',
    env: env('METRICS_PATH'),
    help: 'serve Prometheus metrics here, e.g. /metrics, without auth; off unless given',
  },
  accessLog: {
    scope: 'handler',
    flag: '--access-log',
    env: env('ACCESS_LOG'),
    cli: 'switch',
    default: false,
    help: 'one JSON log line per event request',
  },
  log: { scope: 'handler' },
  logLevel: {
    scope: 'cli',
    flag: '--log-level LEVEL',
    env: env('LOG_LEVEL'),
    default: 'info',
    choices: ['debug', 'info', 'warn', 'error', 'silent'],
    help: 'debug, info, warn, error or silent',
  },
  apiKeysFile: {
    scope: 'cli',
    flag: '--api-keys-file FILE',
    env: env('API_KEYS_FILE'),
    help: 'one "KEY [type,type] [secret=SECRET ...] [rate=N]" per line, # comments',
  },
  apiKeys: {
    scope: 'handler',
    flag: '--api-key KEY[:TYPES]',
    env: env('API_KEYS'),
    envAlias: 'SEGMENT_API_KEYS', // its older name
    cli: 'list',
    help: 'accept this API key, optionally only for some event types, e.g. --api-key k1:track,identify (repeatable; visible in ps); the variable holds more keys, comma-separated, for all event types',
  },
  authenticate: { scope: 'handler' },
  realm: { scope: 'handler', default: 'segment-endpoint' },
  signatureSecretFile: {
    scope: 'cli',
    flag: '--signature-secret-file FILE',
    env: env('SIGNATURE_SECRET_FILE'),
    help: "require X-Segment-Signature or X-Signature (hex HMAC-SHA1 of the body) under a secret in FILE, one a line (up to 4: to rotate one, the new beside the old); a key's own secret=S in --api-keys-file wins",
  },
  signatureSecret: {
    scope: 'handler',
    flag: '--signature-secret S',
    env: env('SIGNATURE_SECRET'),
    help: 'the same, with the secret itself, read as the file is (the flag is visible in ps)',
  },
  signatureLegacyBatch: {
    scope: 'handler',
    flag: '--signature-legacy-batch',
    env: env('SIGNATURE_LEGACY_BATCH'),
    cli: 'switch',
    default: false,
    help: "also accept an X-Signature that signs only the first event of a batch (Segment's legacy signing)",
  },
  maxBodyBytes: {
    scope: 'handler',
    flag: '--max-body-bytes N',
    env: env('MAX_BODY_BYTES'),
    cli: 'integer',
    default: 512 * 1024, // 512 KiB: room for Segment's largest batch (500 KB)
    min: 1,
    max: 2 ** 30,
    help: 'largest body accepted',
  },
  maxDepth: { scope: 'handler', default: MAX_DEPTH, min: 1, max: 1_000 }, // JSON.stringify overflows deeper
  maxInFlight: {
    scope: 'handler',
    flag: '--max-in-flight N',
    env: env('MAX_IN_FLIGHT'),
    cli: 'integer',
    default: 1024, // events; with 512 KiB bodies, at most 512 MiB of bodies held at once
    min: 1,
    max: 1_000_000,
    help: 'requests processed at once (a batch is one); more get 503 + Retry-After',
  },
  maxConnections: {
    scope: 'server',
    flag: '--max-connections N',
    env: env('MAX_CONNECTIONS'),
    cli: 'integer',
    default: 2048, // sockets: bounds what open TLS connections hold (bench/HISTORY.md)
    min: 1,
    max: 1_000_000,
    help: 'open connections at most; at the cap the longest-idle one is closed to admit a new one',
  },
  ...TIMEOUT_OPTIONS,
  idempotency: { scope: 'handler' },
  'idempotency.ttlMs': {
    scope: 'handler',
    flag: '--idempotency-ttl SECS',
    env: env('IDEMPOTENCY_TTL'),
    cli: 'seconds',
    default: 24 * 60 * 60 * 1000, // 24 h
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    help: "how long a processed messageId is remembered per API key, so that Segment's retries of it are not processed again",
  },
  'idempotency.maxEntries': {
    scope: 'handler',
    flag: '--idempotency-max-entries N',
    env: env('IDEMPOTENCY_MAX_ENTRIES'),
    cli: 'integer',
    default: 100_000, // ~3.4 MB: 24 bytes an entry in a ring, 4 bytes (x2) of index
    min: 0,
    max: 100_000_000,
    help: 'messageIds remembered at most, oldest forgotten first; 0 turns duplicate suppression off (not with --idempotency-redis)',
  },
  'idempotency.now': { scope: 'handler' },
  help: { scope: 'cli', flag: '--help', short: 'h', cli: 'switch', help: 'show this help' },
  version: { scope: 'cli', flag: '--version', short: 'v', cli: 'switch', help: 'show the version' },
} as const satisfies Record<string, OptionRow>;

export type OptionName = keyof typeof OPTIONS;

type NamesOf<Shape> = { [K in OptionName]: (typeof OPTIONS)[K] extends Shape ? K : never }[OptionName];
/** The options with bounds (whole numbers), and those on or off. */
export type IntegerOption = NamesOf<{ readonly min: number }>;
export type SwitchOption = NamesOf<{ readonly default: boolean }>;

/** The rows in table order, typed loosely, for code that walks them all. */
export const ROWS = Object.entries(OPTIONS) as ReadonlyArray<[OptionName, OptionRow]>;

/** An integer option: its default when absent, else the value, checked against its row's bounds. */
export function integer(name: IntegerOption, value: unknown): number {
  const { default: fallback, min, max } = OPTIONS[name];
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`options.${name} must be an integer, got ${describeValue(value)}`);
  }
  if (value < min || value > max) {
    throw new RangeError(`options.${name} must be between ${min} and ${max}, got ${value}`);
  }
  return value;
}
