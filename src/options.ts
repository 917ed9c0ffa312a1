import type { ApiKeySpec, Authenticate } from './auth.ts';
import type { Handlers } from './dispatch.ts';
import { describeValue } from './errors.ts';
import type { IdempotencyStore, MemoryIdempotencyOptions } from './idempotency.ts';
import { resolveIdempotency } from './idempotency-option.ts';
import { checkSecret, resolveApiKeys } from './key-spec.ts';
import { jsonLogger, type Logger } from './log.ts';
import { checkFunction, checkHandlers, checkLogger, checkSwitch, misspeltMethods } from './option-checks.ts';
import { type IntegerOption, integer, OPTIONS, ROWS, type SwitchOption } from './option-table.ts';
import { checkPath, clearOfRoutes, distinctPaths } from './paths.ts';
import { routes } from './routes.ts';
import type { Settings } from './settings.ts';
import { checkSettingsSchema, type SettingsSchema } from './settings-schema.ts';
import type { SignatureSecrets } from './signature.ts';

/** Options of `createHandler`: the request pipeline. `S`: the customer's settings, as `settingsSchema` says. */
export interface HandlerOptions<S = Settings> {
  /**
   * Required: one function per supported event type (an object's own, or a class instance's methods,
   * called on it); the CLI without `--handlers` stores events under `--out`. A type without one answers
   * 501. A plain object's other keys are refused at start; a class's method one slip from a type it has
   * no handler for (`idenitfy`) is warned of.
   */
  handlers: Handlers<S>;
  /**
   * The destination's settings, compiled: `TypeCompiler.Compile(Type.Object({ ... }))` from TypeBox
   * (or any object with its `Check`, synchronous, and `Errors`). Each customer's `X-Segment-Settings` is
   * checked once, and handlers get `ctx.settings` typed; settings that do not match are answered 400
   * `SEG_SETTINGS_INVALID`, naming the first place and what it expected, never the value given.
   */
  settingsSchema?: SettingsSchema<S> | undefined;
  /**
   * The API keys to accept: strings, or `{ key, types, signatureSecret, rate }` to limit a key to some
   * event types, give it its own secret or its own events a second (any other field is refused). Found
   * by a digest keyed per process: the check's timing says nothing about any key, and it costs the same
   * with ten keys or a million. Give this or `authenticate`, not both.
   */
  apiKeys?: Iterable<string | ApiKeySpec> | undefined;
  /** Instead of `apiKeys`: `(apiKey) => decision`, sync or async (below). */
  authenticate?: Authenticate | undefined;
  /** The path events are POSTed to (ASCII, no query, fragment, space, `.` or `..` segment). @default '/' */
  path?: string | undefined;
  /**
   * Also take Segment's Tracking API shapes under the event path: `/v1/{type}` with one event and
   * `/v1/batch` (`/v1/import`) with `{"batch": [...]}`, so that Segment's SDKs can send here. @default true
   */
  trackingApi?: boolean | undefined;
  /**
   * GET/HEAD answers 200 `{"status":"ok"}` here, without auth; 503 `{"status":"draining"}` while
   * draining, 503 `{"status":"unavailable"}` while `ready` returns false. @default '/health'
   */
  healthPath?: string | undefined;
  /**
   * GET/HEAD answers 200 `{"status":"live"}` here, without auth, as long as the process runs, whatever
   * the store's state or draining: for orchestrators that restart on liveness and route on readiness
   * (`healthPath`). When `path`, `healthPath` or `metricsPath` is `/live` and this is not given,
   * there is none. @default '/live'
   */
  livePath?: string | undefined;
  /**
   * Events a second each API key may send, in bursts of up to this many; past it, 429 with `Retry-After`
   * (Segment retries), so that one customer cannot starve the others. A batch counts as its events. A
   * key's own rate (`rate` of its ApiKeySpec, or of what `authenticate` decides: there, fractions such as
   * 0.5, one event every 2 s, are allowed) wins; a key's rate of 0 exempts it. 0: no limit.
   * @default 0
   */
  rateLimit?: number | undefined;
  /**
   * Percent of the event loop's time each API key may take over a second while other keys wait; past it,
   * 429 `SEG_CPU_SHARE` with `Retry-After`, so that one customer's costly requests (550 bytes of gzip that
   * inflate to 510 KB of `[{},{},…]`, ~20 ms a request) do not starve the others. Charged: the time its
   * requests hold the thread (authenticate, settings, parse, each event, synchronous handler code). A key
   * alone is never refused, nor one whose requests fit the time to spare: see README. Each worker keeps
   * its own. 0: no limit.
   * @default 50
   */
  cpuShare?: number | undefined;
  /**
   * Whether events can be processed now, asked by the health path: wire it to what the handlers need (the
   * CLI gives the store's `writable`). Events are still processed while it says no, so the endpoint
   * recovers by itself. It must answer `true` or `false` at once (it is not awaited): one that throws or
   * answers anything else (an async function's Promise) is `unavailable`, and said in the log.
   * @default () => true
   */
  ready?: (() => boolean) | undefined;
  /**
   * GET here answers Prometheus text metrics (events by type and status, latency, in flight, store
   * fsync latency, duplicates), without auth. Off unless set.
   */
  metricsPath?: string | undefined;
  /** Log one line per event request (status, type, time, key fingerprint) at info level. @default false */
  accessLog?: boolean | undefined;
  /** The realm named in `WWW-Authenticate` on a 401. @default 'segment-endpoint' */
  realm?: string | undefined;
  /** The largest body accepted, as sent and decompressed (413 past it). @default 524288 (512 KiB) */
  maxBodyBytes?: number | undefined;
  /** The whole body must arrive within this, else 408. @default 10000 (10 s) */
  bodyTimeoutMs?: number | undefined;
  /**
   * A handler still running after this is answered 503 and `ctx.signal` fires; its event is not run
   * again while it still runs, for five timeouts (20 s) at most (Reliability). An async `authenticate` and each call to a store of your own
   * are bounded by it too, each on its own. @default 4000 (4 s)
   */
  handlerTimeoutMs?: number | undefined;
  /**
   * When set, every request must carry `X-Segment-Signature` or `X-Signature`: the hex HMAC-SHA1 of the
   * body under this secret (Segment's Webhooks signing), or under any of a list of up to 4 while one is
   * rotated (in code, or a line each in --signature-secret-file; the flag and its variable are read as
   * the file is, one a line, so a line break that ends the value, `\n`, `\r\n` or `\r`, is not part of
   * the secret).
   * Missing or wrong is a 401, and so is a signed request with `X-Segment-Settings`, stored but not
   * signed. A key's own `signatureSecret` wins.
   */
  signatureSecret?: SignatureSecrets | undefined;
  /**
   * Accept Segment's legacy batch signing: an `X-Signature` that signs only the first event of a JSON
   * array. Off, such a batch is a 401 `SEG_SIGNATURE_PARTIAL`, since the other events are unsigned;
   * prefer "Use X-Segment-Signature Header" in Segment, which signs the whole body. @default false
   */
  signatureLegacyBatch?: boolean | undefined;
  /** Deepest nesting of objects/arrays accepted in a body (deeper is 400). @default 64 */
  maxDepth?: number | undefined;
  /**
   * Requests processed at once (body reading included); past this, 503 with Retry-After at once, so
   * memory stays bounded under any load. A batch is one request: its events run together, started 64
   * a turn of the event loop, so handlers may see up to 4,000 times as many calls at once. @default 1024
   */
  maxInFlight?: number | undefined;
  /**
   * Duplicate suppression by `messageId` per API key: options of the in-memory store, a store of your
   * own (shared between processes), or `false` to process every copy. `{ maxEntries: 0 }` turns it off
   * too, as `--idempotency-max-entries 0` does; a name that is none of these is refused, as a misspelt
   * option is. A store of your own answers each call within
   * `handlerTimeoutMs` (else 503 `SEG_IDEMPOTENCY_UNAVAILABLE`), and a claim with `'new'`, `'done'` or
   * `'busy'` (else 500). @default { maxEntries: 100000, ttlMs: 86400000 (24 h) }
   */
  idempotency?: MemoryIdempotencyOptions | IdempotencyStore | false | undefined;
  /** A pino-compatible logger; `silentLogger` drops everything. @default JSON lines on stderr, level info */
  log?: Logger | undefined;
}

/** The options apart from those typed by the settings' schema. */
type OptionValues = Omit<HandlerOptions, 'handlers' | 'settingsSchema'>;

/** The whole-number and on/off options of the handler: checked against their rows, nothing more. */
type PlainOption = Extract<IntegerOption | SwitchOption, keyof HandlerOptions>;

type PlainOptions = { readonly [K in PlainOption]: K extends IntegerOption ? number : boolean };

export type ResolvedHandlerOptions = PlainOptions & {
  readonly handlers: Handlers;
  readonly settingsSchema: SettingsSchema<unknown> | undefined;
  readonly authenticate: Authenticate;
  readonly path: string;
  readonly healthPath: string;
  readonly livePath: string | undefined;
  readonly ready: () => boolean;
  readonly metricsPath: string | undefined;
  readonly realm: string;
  readonly signatureSecret: SignatureSecrets | undefined;
  readonly idempotency: IdempotencyStore | undefined;
  readonly log: Logger;
};

const alwaysReady = () => true;

// A realm is written inside a quoted string (RFC 9110 §5.6.4): printable ASCII, no quote to end it and
// no backslash to escape what follows.
const REALM_RE = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** Checks every option once, at start-up: a TypeError or RangeError names the option and the bad value. */
export function resolveHandlerOptions<S>(input: HandlerOptions<S>): ResolvedHandlerOptions {
  if (typeof input !== 'object' || input === null) throw new TypeError('options must be an object');
  const handlers = checkHandlers(input.handlers);
  const settingsSchema = checkSettingsSchema(input.settingsSchema);
  const authenticate = resolveAuthenticate(input);
  const path = checkPath('path', input.path ?? OPTIONS.path.default);
  const healthPath = checkPath('healthPath', input.healthPath ?? OPTIONS.healthPath.default);
  const metricsPath =
    input.metricsPath === undefined ? undefined : checkPath('metricsPath', input.metricsPath);
  // `/live` came after the others: a path given as one of them keeps it, and liveness is then off.
  const liveDefault = OPTIONS.livePath.default;
  const livePath =
    input.livePath !== undefined
      ? checkPath('livePath', input.livePath)
      : [path, healthPath, metricsPath].includes(liveDefault)
        ? undefined
        : liveDefault;
  distinctPaths({ path, healthPath, livePath, metricsPath });
  const plain = plainOptions(input);
  clearOfRoutes({ healthPath, livePath, metricsPath }, routes(path, plain.trackingApi));
  const ready = input.ready === undefined ? alwaysReady : checkFunction('ready', input.ready);
  const realm = input.realm ?? OPTIONS.realm.default;
  if (typeof realm !== 'string' || !REALM_RE.test(realm)) {
    throw new TypeError(
      `options.realm must be printable ASCII without quotes or backslashes, got ${describeValue(realm)}`,
    );
  }
  const log = checkLogger(loggerOf(input));
  for (const slip of misspeltMethods(input.handlers)) log.warn({}, slip);
  const idempotency = resolveIdempotency(input.idempotency, log, plain.handlerTimeoutMs);
  return Object.freeze({
    ...plain,
    handlers,
    settingsSchema,
    authenticate,
    path,
    healthPath,
    livePath,
    ready,
    metricsPath,
    realm,
    signatureSecret: checkSecret('options.signatureSecret', input.signatureSecret),
    idempotency,
    log,
  });
}

/** The options' logger: JSON lines on stderr at info unless one is given. */
export const loggerOf = (input: Pick<HandlerOptions, 'log'>): Logger => input.log ?? jsonLogger('info');

/**
 * Every whole-number and on/off option of the handler, from its row: a number within the bounds, a
 * boolean as given. Anything but a boolean leaves a switch at its default.
 */
function plainOptions(input: OptionValues): PlainOptions {
  const values: Record<string, number | boolean> = {};
  for (const [name, row] of ROWS) {
    if (row.scope !== 'handler' || name.includes('.')) continue;
    const given = input[name as keyof OptionValues];
    if (row.min !== undefined) values[name] = integer(name as IntegerOption, given);
    else if (typeof row.default === 'boolean') values[name] = checkSwitch(name, given, row.default);
  }
  return values as PlainOptions;
}

function resolveAuthenticate(input: OptionValues): Authenticate {
  if (input.authenticate !== undefined) {
    if (input.apiKeys !== undefined) {
      throw new TypeError('give options.apiKeys or options.authenticate, not both: one would be ignored');
    }
    return checkFunction('authenticate', input.authenticate);
  }
  if (input.apiKeys === undefined) {
    throw new TypeError('options.apiKeys or options.authenticate is required: the endpoint never runs open');
  }
  return resolveApiKeys(input.apiKeys);
}
