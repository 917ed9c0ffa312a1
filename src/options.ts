import { type ApiKeySpec, type Authenticate, keyAuthenticator } from './auth.ts';
import type { Handlers } from './dispatch.ts';
import {
  IDEMPOTENCY_DEFAULTS,
  type IdempotencyStore,
  type MemoryIdempotencyOptions,
  MemoryIdempotencyStore,
} from './idempotency.ts';
import { MAX_DEPTH } from './json.ts';
import { jsonLogger, type Logger } from './log.ts';
import { EVENT_TYPES, type EventType } from './types.ts';

/** Options of `createHandler`: the request pipeline. */
export interface HandlerOptions {
  /** One function per supported event type. A type without one answers 501. */
  handlers: Handlers;
  /**
   * The API keys to accept, each optionally limited to some event types. Checked in constant time.
   * Give this or `authenticate`.
   */
  apiKeys?: Iterable<string | ApiKeySpec>;
  /** Decides on each API key (sync or async). Replaces `apiKeys` when given. */
  authenticate?: Authenticate;
  /** @default '/' */
  path?: string;
  /**
   * Also take Segment's Tracking API shapes under the event path: `/v1/{type}` with one event and
   * `/v1/batch` (`/v1/import`) with `{"batch": [...]}`, so that Segment's SDKs can send here. @default true
   */
  trackingApi?: boolean;
  /**
   * GET/HEAD answers 200 `{"status":"ok"}` here, without auth; 503 `{"status":"draining"}` while
   * draining, 503 `{"status":"unavailable"}` while `ready` returns false. @default '/health'
   */
  healthPath?: string;
  /**
   * Whether events can be processed now, asked by the health path: wire it to what the handlers need (the
   * CLI gives the store's `writable`). Events are still processed while it says no, so the endpoint
   * recovers by itself. @default () => true
   */
  ready?: () => boolean;
  /**
   * GET here answers Prometheus text metrics (events by type and status, latency, in flight, store
   * fsync latency, duplicates), without auth. Off unless set.
   */
  metricsPath?: string;
  /** Log one line per event request (status, type, time, key fingerprint) at info level. @default false */
  accessLog?: boolean;
  /** The realm named in `WWW-Authenticate` on a 401. @default 'segment-endpoint' */
  realm?: string;
  /** @default 524288 (512 KiB) */
  maxBodyBytes?: number;
  /** The whole body must arrive within this, else 408. @default 10000 (10 s) */
  bodyTimeoutMs?: number;
  /** A handler still running after this is answered 503 and its signal aborted. @default 4000 (4 s) */
  handlerTimeoutMs?: number;
  /**
   * When set, every request must carry `X-Segment-Signature` or `X-Signature`: the hex HMAC-SHA1 of the
   * body under this secret (Segment's Webhooks signing). Missing or wrong is a 401. A key's own
   * `signatureSecret` wins.
   */
  signatureSecret?: string;
  /**
   * Accept Segment's legacy batch signing: an `X-Signature` that signs only the first event of a JSON
   * array. Off, such a batch is a 401 `SEG_SIGNATURE_PARTIAL`, since the other events are unsigned;
   * prefer "Use X-Segment-Signature Header" in Segment, which signs the whole body. @default false
   */
  signatureLegacyBatch?: boolean;
  /** Deepest nesting of objects/arrays accepted in a body (deeper is 400). @default 64 */
  maxDepth?: number;
  /**
   * Events processed at once (body reading included); past this, 503 with Retry-After at once, so
   * memory stays bounded under any load. @default 1024
   */
  maxInFlight?: number;
  /**
   * Duplicate suppression by `messageId` per API key: options of the in-memory store, a store of your
   * own (shared between processes), or `false` to process every copy. @default { maxEntries: 100000, ttlMs: 24 h }
   */
  idempotency?: MemoryIdempotencyOptions | IdempotencyStore | false;
  /** pino-compatible. @default JSON lines on stderr, level info */
  log?: Logger;
}

export interface ResolvedHandlerOptions {
  readonly handlers: Handlers;
  readonly authenticate: Authenticate;
  readonly path: string;
  readonly healthPath: string;
  readonly ready: () => boolean;
  readonly metricsPath: string | undefined;
  readonly accessLog: boolean;
  readonly trackingApi: boolean;
  readonly realm: string;
  readonly maxBodyBytes: number;
  readonly bodyTimeoutMs: number;
  readonly handlerTimeoutMs: number;
  readonly signatureSecret: string | undefined;
  readonly signatureLegacyBatch: boolean;
  readonly maxDepth: number;
  readonly maxInFlight: number;
  readonly idempotency: IdempotencyStore | undefined;
  readonly log: Logger;
}

export const HANDLER_DEFAULTS = {
  path: '/',
  healthPath: '/health',
  realm: 'segment-endpoint',
  maxBodyBytes: 512 * 1024, // 512 KiB: Segment's own limit for a batch; one event is at most 32 KiB
  bodyTimeoutMs: 10_000, // 10 s
  handlerTimeoutMs: 4_000, // 4 s: Segment gives up on a request after about 5 s
  maxDepth: MAX_DEPTH, // 64 levels
  maxInFlight: 1024, // events; with 512 KiB bodies, at most 512 MiB of bodies held at once
} as const;

const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's ceiling (~24.8 days)
const alwaysReady = () => true;

export function resolveHandlerOptions(input: HandlerOptions): ResolvedHandlerOptions {
  if (typeof input !== 'object' || input === null) throw new TypeError('options must be an object');
  const handlers = checkHandlers(input.handlers);
  let authenticate: Authenticate;
  if (input.authenticate !== undefined) {
    if (typeof input.authenticate !== 'function') {
      throw new TypeError(`options.authenticate must be a function, got ${describe(input.authenticate)}`);
    }
    authenticate = input.authenticate;
  } else if (input.apiKeys !== undefined) {
    authenticate = keyAuthenticator(checkApiKeys(input.apiKeys));
  } else {
    throw new TypeError('options.apiKeys or options.authenticate is required: the endpoint never runs open');
  }
  const path = checkPath('path', input.path ?? HANDLER_DEFAULTS.path);
  const healthPath = checkPath('healthPath', input.healthPath ?? HANDLER_DEFAULTS.healthPath);
  if (path === healthPath) throw new RangeError(`options.healthPath must differ from options.path (${path})`);
  const metricsPath =
    input.metricsPath === undefined ? undefined : checkPath('metricsPath', input.metricsPath);
  if (metricsPath === path || metricsPath === healthPath) {
    throw new RangeError(
      `options.metricsPath must differ from options.path and options.healthPath (${metricsPath})`,
    );
  }
  if (input.ready !== undefined && typeof input.ready !== 'function') {
    throw new TypeError(`options.ready must be a function, got ${describe(input.ready)}`);
  }
  const realm = input.realm ?? HANDLER_DEFAULTS.realm;
  if (typeof realm !== 'string' || !/^[\x20-\x7e]*$/.test(realm) || realm.includes('"')) {
    throw new TypeError(`options.realm must be printable ASCII without quotes, got ${describe(realm)}`);
  }
  return Object.freeze({
    handlers,
    authenticate,
    path,
    healthPath,
    ready: input.ready ?? alwaysReady,
    metricsPath,
    accessLog: input.accessLog === true,
    trackingApi: input.trackingApi !== false,
    realm,
    maxBodyBytes: integer('maxBodyBytes', input.maxBodyBytes, HANDLER_DEFAULTS.maxBodyBytes, 1, 2 ** 30),
    bodyTimeoutMs: integer(
      'bodyTimeoutMs',
      input.bodyTimeoutMs,
      HANDLER_DEFAULTS.bodyTimeoutMs,
      1,
      MAX_TIMER_MS,
    ),
    handlerTimeoutMs: integer(
      'handlerTimeoutMs',
      input.handlerTimeoutMs,
      HANDLER_DEFAULTS.handlerTimeoutMs,
      1,
      MAX_TIMER_MS,
    ),
    signatureSecret: checkSecret(input.signatureSecret),
    signatureLegacyBatch: input.signatureLegacyBatch === true,
    maxDepth: integer('maxDepth', input.maxDepth, HANDLER_DEFAULTS.maxDepth, 1, 10_000),
    maxInFlight: integer('maxInFlight', input.maxInFlight, HANDLER_DEFAULTS.maxInFlight, 1, 1_000_000),
    idempotency: resolveIdempotency(input.idempotency),
    log: input.log ?? jsonLogger('info'),
  });
}

function resolveIdempotency(value: HandlerOptions['idempotency']): IdempotencyStore | undefined {
  if (value === false) return undefined;
  if (value === undefined) return new MemoryIdempotencyStore();
  if (typeof value !== 'object' || value === null) {
    throw new TypeError(`options.idempotency must be an object or false, got ${describe(value)}`);
  }
  const store = value as Partial<IdempotencyStore>;
  if (typeof store.claim === 'function') {
    if (typeof store.complete !== 'function' || typeof store.release !== 'function') {
      throw new TypeError('options.idempotency: a store needs claim, complete and release functions');
    }
    return value as IdempotencyStore;
  }
  const memory = value as MemoryIdempotencyOptions;
  return new MemoryIdempotencyStore({
    maxEntries: integer(
      'idempotency.maxEntries',
      memory.maxEntries,
      IDEMPOTENCY_DEFAULTS.maxEntries,
      0,
      100_000_000,
    ),
    ttlMs: integer('idempotency.ttlMs', memory.ttlMs, IDEMPOTENCY_DEFAULTS.ttlMs, 1, Number.MAX_SAFE_INTEGER),
    now: memory.now,
  });
}

/** An optional integer option: the default when absent, else a TypeError/RangeError naming it. */
export function integer(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`options.${name} must be an integer, got ${describe(value)}`);
  }
  if (value < min || value > max) {
    throw new RangeError(`options.${name} must be between ${min} and ${max}, got ${value}`);
  }
  return value;
}

function checkHandlers(handlers: unknown): Handlers {
  if (typeof handlers !== 'object' || handlers === null) {
    throw new TypeError(`options.handlers must be an object of event handlers, got ${describe(handlers)}`);
  }
  for (const [type, handler] of Object.entries(handlers)) {
    if (!EVENT_TYPES.includes(type as EventType)) {
      throw new RangeError(
        `options.handlers.${type} is not a Segment event type (${EVENT_TYPES.join(', ')})`,
      );
    }
    if (handler !== undefined && typeof handler !== 'function') {
      throw new TypeError(`options.handlers.${type} must be a function, got ${describe(handler)}`);
    }
  }
  return Object.freeze({ ...handlers }) as Handlers;
}

function checkApiKeys(keys: Iterable<string | ApiKeySpec>): ApiKeySpec[] {
  if (typeof keys !== 'object' || keys === null || typeof keys[Symbol.iterator] !== 'function') {
    throw new TypeError(`options.apiKeys must be an array of keys, got ${describe(keys)}`);
  }
  const specs: ApiKeySpec[] = [];
  for (const item of keys) {
    const spec = typeof item === 'string' ? { key: item } : item;
    if (typeof spec?.key !== 'string' || spec.key === '' || spec.key.includes(':')) {
      // The value itself is not echoed: it may be a secret.
      throw new TypeError(`options.apiKeys[${specs.length}] must be a non-empty string without ":"`);
    }
    if (
      spec.signatureSecret !== undefined &&
      (typeof spec.signatureSecret !== 'string' || spec.signatureSecret === '')
    ) {
      throw new TypeError(`options.apiKeys[${specs.length}].signatureSecret must be a non-empty string`);
    }
    for (const type of spec.types ?? []) {
      if (!EVENT_TYPES.includes(type)) {
        throw new RangeError(
          `options.apiKeys: "${type}" is not a Segment event type (${EVENT_TYPES.join(', ')})`,
        );
      }
    }
    specs.push(spec);
  }
  if (specs.length === 0) throw new RangeError('options.apiKeys must hold at least one key');
  return specs;
}

function checkSecret(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  // The value is not echoed: it is a secret.
  if (typeof value !== 'string' || value === '') {
    throw new TypeError('options.signatureSecret must be a non-empty string');
  }
  return value;
}

function checkPath(name: string, value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('/') || /[?#\s]/.test(value)) {
    throw new TypeError(`options.${name} must be a path starting with "/", got ${describe(value)}`);
  }
  return value;
}

export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  return value === null ? 'null' : typeof value === 'object' ? 'an object' : String(value);
}
