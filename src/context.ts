import type { IncomingHttpHeaders } from 'node:http';
import { keyFingerprint } from './auth.ts';
import { type EventLogger, type Logger, withFields } from './log.ts';
import type { Settings } from './settings.ts';

// The context a handler gets beside its event (the `ctx` of the handler contract).

/** What a handler gets besides the event. `S`: the settings, as `settingsSchema` says (checked). */
export interface Context<S = Settings> {
  /** The API key the event was sent with: the partner's customer (tenant). */
  readonly apiKey: string;
  /** The customer's custom settings, from `X-Segment-Settings` (`{}` when absent). */
  readonly settings: S;
  readonly headers: IncomingHttpHeaders;
  /** Aborted when the handler runs past `handlerTimeoutMs`: the sender has been told 503 by then. */
  readonly signal: AbortSignal;
  /** The endpoint's logger; each line names the event (source, type, messageId). */
  readonly log: EventLogger;
  /** When the endpoint received the event. */
  readonly receivedAt: Date;
  /** The event exactly as sent, before its top-level casing was normalised. */
  readonly original: Readonly<Record<string, unknown>>;
  /**
   * The request body's JSON text as received (a leading BOM dropped), to store or forward without
   * serialising again, when the body is this one event on the event path; `undefined` for an event of
   * a batch or an array, on `/v1/{type}`, and when a framework parsed the body before this handler ran.
   */
  readonly raw: string | undefined;
}

/**
 * The Context given to handlers. The AbortController behind `signal` is made only when a handler
 * reads it: most never do, and making one per event shows in the profile (bench/HISTORY.md).
 */
export class EventContext implements Context {
  readonly apiKey: string;
  readonly settings: Settings;
  readonly headers: IncomingHttpHeaders;
  readonly receivedAt: Date;
  readonly original: Readonly<Record<string, unknown>>;
  readonly raw: string | undefined;
  readonly #endpointLog: Logger;
  /** The event's type and messageId, for the lines of `log`. */
  readonly #type: string;
  readonly #messageId: unknown;
  #log: EventLogger | undefined;
  #controller: AbortController | undefined;
  #reason: unknown;

  constructor(
    apiKey: string,
    settings: Settings,
    headers: IncomingHttpHeaders,
    log: Logger,
    type: string,
    messageId: unknown,
    original: Readonly<Record<string, unknown>>,
    raw: string | undefined,
  ) {
    this.apiKey = apiKey;
    this.settings = settings;
    this.headers = headers;
    this.#endpointLog = log;
    this.#type = type;
    this.#messageId = messageId;
    this.receivedAt = new Date();
    this.original = original;
    this.raw = raw;
  }

  /**
   * The endpoint's logger, each line naming the event (its source's fingerprint, type and messageId, the
   * handler's own fields after them): made when a handler first logs, as most never do.
   */
  get log(): EventLogger {
    this.#log ??= withFields(this.#endpointLog, {
      source: keyFingerprint(this.apiKey),
      type: this.#type,
      ...(typeof this.#messageId === 'string' && { messageId: this.#messageId }),
    });
    return this.#log;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** Aborts the signal, now or, if nobody has read it yet, when it is read. */
  abort(reason: unknown): void {
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}
