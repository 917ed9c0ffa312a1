import type { Context, Handlers } from '../dispatch.ts';
import { EndpointError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { eventJson, everyType, StoredFields } from './fields.ts';
import type { NdjsonStore } from './file-store.ts';

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
  const fields = new StoredFields();
  // One log line when writes start failing (or fail for a new reason) and one when they work again, not
  // one per refused event: a full disk refuses every event until space returns. Again means for a second
  // (STEADY_MS) with no failure: at a file-size limit small commits fit and large ones do not, by turns.
  let down: { readonly code: unknown } | undefined;
  let steadying: NodeJS.Timeout | undefined;
  // Said with the first event stored since (its messageId), not the one refused first. The event's logger
  // is made only then: made on first use (a digest of its key), it would cost every event stored.
  const stored = (ctx: Context) => {
    if (down === undefined || steadying !== undefined) return;
    const log = ctx.log;
    steadying = setTimeout(() => {
      steadying = undefined;
      down = undefined;
      log.info({ dir: store.dir }, 'the event store writes again');
    }, STEADY_MS).unref();
  };
  const refused = (err: unknown, log: Logger): never => {
    clearTimeout(steadying);
    steadying = undefined;
    const code = (err as { code?: unknown } | undefined)?.code;
    if (down === undefined || down.code !== code) {
      log.error({ err, dir: store.dir }, 'the event store cannot write: events are answered 503');
      down = { code };
    }
    throw new EndpointError('SEG_STORE_UNAVAILABLE', undefined, { cause: err });
  };
  const save = (_event: unknown, ctx: Context) => {
    // Serialised by hand around the settings, already JSON (one string per customer): the same line
    // JSON.stringify would give for a record of StoredRecord's shape, without serialising them again.
    const source = fields.source(ctx.apiKey);
    const settings = fields.settings(ctx);
    const event = eventJson(ctx);
    const line = `{"receivedAt":"${ctx.receivedAt.toISOString()}","source":"${source}","settings":${settings},"event":${event}}`;
    return store.appendLine(line, ctx.receivedAt).then(
      () => stored(ctx),
      (err) => refused(err, ctx.log),
    );
  };
  return everyType(save);
}

const STEADY_MS = 1_000; // 1 s of writes that work before the store is said to write again
