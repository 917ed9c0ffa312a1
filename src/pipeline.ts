import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { type AuthDecision, keyFingerprint, requestApiKey } from './auth.ts';
import { acceptBatch, batchAnswer, type EventResult, eventsOf, type Route } from './batch.ts';
import { asObject, readJson } from './body.ts';
import { createDispatcher, type Dispatcher, EventContext } from './dispatch.ts';
import { EndpointError, forbiddenType, toErrorAnswer, unknownType, unsupportedType } from './errors.ts';
import type { Metrics } from './metrics.ts';
import { normalizeEvent } from './normalize.ts';
import { once } from './once.ts';
import type { ResolvedHandlerOptions } from './options.ts';
import { isPromise } from './promise.ts';
import { type RefusalContext, sendError, sendStatus } from './respond.ts';
import { type Settings, SettingsCache } from './settings.ts';
import { verifySignature } from './signature.ts';
import type { EventType } from './types.ts';
import { eventValidators, type Validator } from './validate.ts';

/** What the request-level checks established, for each event the request carries. */
interface Accepted {
  readonly apiKey: string;
  readonly decision: AuthDecision;
  readonly settings: Settings;
  readonly headers: IncomingHttpHeaders;
}

/** An event whose type is known: one of Segment's, permitted to its key, taken by a handler. */
interface Typed {
  readonly type: EventType;
  readonly event: Record<string, unknown>;
  readonly original: Record<string, unknown>;
}

/**
 * The event pipeline: what happens to a request the front door let through, in the order of Segment's
 * partner contract. Its state (validators, the dispatch table, decoded settings) belongs to one handler.
 */
export class EventPipeline {
  readonly #opts: ResolvedHandlerOptions;
  readonly #validators: Record<EventType, Validator> = eventValidators();
  readonly #dispatcher: Dispatcher;
  readonly #settings = new SettingsCache();
  readonly #metrics: Metrics | undefined;
  readonly #observing: boolean;
  readonly #refusal: RefusalContext;
  readonly #draining: () => boolean;

  constructor(
    opts: ResolvedHandlerOptions,
    metrics: Metrics | undefined,
    refusal: RefusalContext,
    draining: () => boolean,
  ) {
    this.#opts = opts;
    this.#dispatcher = createDispatcher(opts.handlers, opts.handlerTimeoutMs);
    this.#metrics = metrics;
    this.#observing = metrics !== undefined || opts.accessLog;
    this.#refusal = refusal;
    this.#draining = draining;
  }

  /**
   * One request: authenticate, decode the settings, read and parse the body, verify its signature, find
   * the events it carries, take each, answer. The first refusal is the answer.
   */
  async handle(req: IncomingMessage, res: ServerResponse, route: Route): Promise<void> {
    const started = this.#observing ? performance.now() : 0;
    let apiKey: string | undefined;
    let result: EventResult;
    try {
      apiKey = requestApiKey(req);
      const pending = this.#opts.authenticate(apiKey);
      const decision = permitted(isPromise(pending) ? await pending : pending);
      const settings = this.#settings.decode(req.headers['x-segment-settings']);
      if (settings === undefined) throw new EndpointError('SEG_SETTINGS_INVALID');
      const { value, text } = await readJson(req, this.#opts, res, route.kind !== 'event');
      this.#verifySignature(req.headers, decision, value, text);
      const { events, batch } = eventsOf(value, route, text);
      const request: Accepted = { apiKey, decision, settings, headers: req.headers };
      if (batch) {
        result = batchAnswer(await this.#acceptAll(request, events));
      } else {
        // The body's own text goes with the event only when the event is the body as sent.
        const one = this.#accept(
          request,
          events[0],
          'Request body',
          route.kind === 'event' ? text : undefined,
        );
        result = isPromise(one) ? await one : one;
      }
    } catch (err) {
      result = this.#failed(err, apiKey);
    }
    if (result.error === undefined) sendStatus(res, result.status, this.#draining());
    else sendError(req, res, result.error, this.#refusal);
    if (this.#observing) this.#observe(req, result, apiKey, started);
  }

  #verifySignature(
    headers: IncomingHttpHeaders,
    decision: AuthDecision,
    value: unknown,
    text?: string,
  ): void {
    const secret =
      (typeof decision === 'object' ? decision.signatureSecret : undefined) ?? this.#opts.signatureSecret;
    if (secret !== undefined) verifySignature(headers, secret, value, text, this.#opts.signatureLegacyBatch);
  }

  /** A batch's events, each through the same steps as a single event (see acceptBatch). */
  #acceptAll(request: Accepted, events: readonly unknown[]): Promise<EventResult[]> {
    const settingsBytes = Buffer.byteLength(JSON.stringify(request.settings));
    return acceptBatch(events, settingsBytes, 2 * this.#opts.maxBodyBytes, (event, index) =>
      this.#accept(request, event, `Event #${index}`, undefined),
    );
  }

  /**
   * One event: typed (an object, its casing, a type this key may send and a handler takes), validated
   * against its type's schema, then processed at most once per messageId. A synchronous handler's
   * result comes back without a turn of the microtask queue.
   */
  #accept(
    request: Accepted,
    received: unknown,
    what: string,
    raw: string | undefined,
  ): EventResult | Promise<EventResult> {
    let checked: Typed;
    try {
      checked = this.#typed(received, request.decision, what);
    } catch (err) {
      return this.#failed(err, request.apiKey);
    }
    const { type } = checked;
    try {
      const problem = this.#validators[type](checked.event);
      if (problem !== undefined) throw new EndpointError('SEG_INVALID_EVENT', problem);
      const status = this.#process(request, checked, raw);
      if (!isPromise(status)) return { status, type };
      return status.then(
        (settled) => ({ status: settled, type }),
        (err: unknown) => this.#failed(err, request.apiKey, type),
      );
    } catch (err) {
      return this.#failed(err, request.apiKey, type);
    }
  }

  #typed(received: unknown, decision: AuthDecision, what: string): Typed {
    const original = asObject(received, what);
    const event = normalizeEvent(original);
    const { type } = event;
    if (typeof type !== 'string' || type === '') throw new EndpointError('SEG_TYPE_MISSING');
    if (!Object.hasOwn(this.#validators, type)) throw unknownType(type);
    const known = type as EventType;
    if (typeof decision === 'object' && decision.allow !== undefined && !decision.allow.includes(known)) {
      throw forbiddenType(known);
    }
    if (!this.#dispatcher.supports(known)) throw unsupportedType(known);
    return { type: known, event, original };
  }

  #process(request: Accepted, checked: Typed, raw: string | undefined): number | Promise<number> {
    const { apiKey, settings, headers } = request;
    const { type, event, original } = checked;
    const { idempotency, log } = this.#opts;
    const run = () =>
      this.#dispatcher.dispatch(type, event, new EventContext(apiKey, settings, headers, log, original, raw));
    const { messageId } = event;
    if (idempotency === undefined || typeof messageId !== 'string' || messageId === '') return run();
    const outcome = once(idempotency, `${apiKey}\n${messageId}`, run);
    return isPromise(outcome)
      ? outcome.then((status) => this.#counted(status, apiKey, messageId))
      : this.#counted(outcome, apiKey, messageId);
  }

  #counted(status: number | 'duplicate', apiKey: string, messageId: string): number {
    if (status !== 'duplicate') return status;
    // Processed before: the sender missed our answer. Success again, without a second run.
    this.#metrics?.duplicate();
    this.#opts.log.debug({ source: keyFingerprint(apiKey), messageId }, 'duplicate event');
    return 200;
  }

  /** A refusal as a result; a cause of ours (not the sender's) goes to the log, never to the sender. */
  #failed(err: unknown, apiKey: string | undefined, type?: EventType): EventResult {
    const error = toErrorAnswer(err);
    if (error.internal !== undefined) {
      const source = apiKey === undefined ? undefined : keyFingerprint(apiKey);
      this.#opts.log.error({ err: error.internal, source, status: error.status }, 'event handler failed');
    }
    return { status: error.status, type, error };
  }

  #observe(req: IncomingMessage, result: EventResult, apiKey: string | undefined, started: number): void {
    const seconds = (performance.now() - started) / 1000;
    const { status, type } = result;
    this.#metrics?.request(type ?? 'unknown', status, seconds);
    if (this.#opts.accessLog) {
      const source = apiKey === undefined ? undefined : keyFingerprint(apiKey);
      const ms = Math.round(seconds * 1e4) / 10;
      this.#opts.log.info({ status, type, ms, source, url: req.url }, 'event');
    }
  }
}

/** The authenticator's decision, or the 401/403 it amounts to. */
function permitted(decision: AuthDecision): AuthDecision {
  if (decision === 'unknown' || decision === false) throw new EndpointError('SEG_AUTH_UNKNOWN');
  if (decision === 'forbidden') throw new EndpointError('SEG_FORBIDDEN');
  return decision;
}
