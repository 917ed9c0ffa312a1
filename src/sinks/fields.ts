import { keyFingerprint } from '../auth.ts';
import type { Context, Handlers } from '../dispatch.ts';
import { writtenSettings } from '../settings.ts';

// What every sink keeps of an event besides the event itself, computed once per customer rather than
// once per event: the key's fingerprint and the settings' JSON text.

export class StoredFields {
  readonly #sources = new Map<string, string>();

  /** A short hash of the API key: which customer sent the event, without keeping the key itself. */
  source(apiKey: string): string {
    let source = this.#sources.get(apiKey);
    if (source === undefined) {
      if (this.#sources.size >= 1024) this.#sources.clear();
      source = keyFingerprint(apiKey);
      this.#sources.set(apiKey, source);
    }
    return source;
  }

  /** The customer's settings as JSON (written once for each distinct X-Segment-Settings header). */
  settings(ctx: Context): string {
    return writtenSettings(ctx.settings).json;
  }
}

/**
 * The event as parsed, serialised again rather than the body's own text: a body may repeat a key or hold
 * a number a double rounds, and then its text says something else to another JSON reader than what was
 * authorised, validated and handed to the handlers. What is stored says exactly that.
 */
export const eventJson = (ctx: Context): string => JSON.stringify(ctx.original);

/** The handlers of a sink: the same save for each of the seven types. */
export function everyType(
  save: (event: { type: string; messageId?: unknown }, ctx: Context) => Promise<void>,
): Handlers {
  return { identify: save, track: save, page: save, screen: save, group: save, alias: save, delete: save };
}
