import { keyFingerprint } from './auth.ts';
import type { Context, Handlers } from './dispatch.ts';
import { EndpointError } from './errors.ts';
import type { Logger } from './log.ts';
import type { NdjsonStore } from './store.ts';

// What the default store keeps of each accepted event, and the handlers that keep it.

/** The line the default store keeps for each accepted event. */
export interface StoredRecord {
  readonly receivedAt: string;
  /** A short hash of the API key: which customer sent it, without keeping the key itself. */
  readonly source: string;
  readonly settings: Readonly<Record<string, unknown>>;
  /** The event as parsed (its top-level casing as sent): what was authorised, validated and handled. */
  readonly event: Readonly<Record<string, unknown>>;
}

/**
 * Handlers for every event type that append the event to `store` before answering 200. While the store
 * cannot write, events are answered 503 `SEG_STORE_UNAVAILABLE` (retryable); the cause is logged.
 */
export function storeHandlers(store: NdjsonStore): Handlers {
  const sources = new Map<string, string>();
  const settingsJson = new WeakMap<object, string>();
  // One log line when writes start failing (or fail for a new reason) and one when they work again, not
  // one per refused event: a full disk refuses every event until space returns.
  let down: { readonly log: Logger; readonly code: unknown } | undefined;
  const stored = () => {
    if (down === undefined) return;
    down.log.info({ dir: store.dir }, 'the event store writes again');
    down = undefined;
  };
  const refused = (err: unknown, log: Logger): never => {
    const code = (err as { code?: unknown } | undefined)?.code;
    if (down === undefined || down.code !== code) {
      log.error({ err, dir: store.dir }, 'the event store cannot write: events are answered 503');
      down = { log, code };
    }
    throw new EndpointError('SEG_STORE_UNAVAILABLE', undefined, { cause: err });
  };
  const save = (_event: unknown, ctx: Context) => {
    // Serialised by hand around the settings, already JSON (one string per customer): the same line
    // JSON.stringify would give for a record of StoredRecord's shape, without serialising them again.
    let source = sources.get(ctx.apiKey);
    if (source === undefined) {
      if (sources.size >= 1024) sources.clear();
      source = keyFingerprint(ctx.apiKey);
      sources.set(ctx.apiKey, source);
    }
    let settings = settingsJson.get(ctx.settings);
    if (settings === undefined) {
      settings = JSON.stringify(ctx.settings);
      settingsJson.set(ctx.settings, settings);
    }
    // The event as parsed, serialised again rather than the body's own text: a body may repeat a key or
    // hold a number a double rounds, and then its text says something else to another JSON reader than
    // what was authorised, validated and handed to the handlers. The stored line says exactly that.
    const event = JSON.stringify(ctx.original);
    const line = `{"receivedAt":"${ctx.receivedAt.toISOString()}","source":"${source}","settings":${settings},"event":${event}}`;
    return store.appendLine(line, ctx.receivedAt).then(stored, (err) => refused(err, ctx.log));
  };
  return { identify: save, track: save, page: save, screen: save, group: save, alias: save, delete: save };
}
