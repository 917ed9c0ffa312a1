import type { IncomingHttpHeaders } from 'node:http';
import { type AuthDecision, keyFingerprint } from './auth.ts';
import type { EventResult } from './batch.ts';
import { asObject } from './body.ts';
import { EventContext } from './context.ts';
import { createDispatcher, type Dispatcher } from './dispatch.ts';
import { toErrorAnswer } from './error-answer.ts';
import { EndpointError } from './errors.ts';
import type { LateWork } from './late-work.ts';
import { drops } from './log.ts';
import { LogBudget } from './log-budget.ts';
import type { Metrics } from './metrics.ts';
import { fieldKey, normalizeEvent } from './normalize.ts';
import { onceEvent } from './once.ts';
import type { ResolvedHandlerOptions } from './options.ts';
import { isPromise } from './promise.ts';
import { forbiddenType, unknownType, unsupportedType } from './refusals.ts';
import type { Settings } from './settings.ts';
import type { EventType } from './types.ts';
import { eventValidators, type Validator } from './validate.ts';

/** What the request-level checks established, for each event the request carries. */
export interface RequestFacts {
  readonly apiKey: string | undefined;
  readonly decision: AuthDecision;
  readonly settings: Settings | undefined;
  readonly headers: IncomingHttpHeaders;
}

/** An event whose type is known: one of Segment's, permitted to its key, taken by a handler. */
interface Typed {
  readonly type: EventType;
  readonly event: Record<string, unknown>;
  readonly original: Record<string, unknown>;
}

/**
 * Taking one event, whatever request carried it: its type, casing and schema checked, then handed to
 * its handler at most once per messageId. The validators and the dispatch table belong to one handler.
 */
export class EventIntake {
  readonly #opts: ResolvedHandlerOptions;
  readonly #validators: Record<EventType, Validator> = eventValidators();
  readonly #dispatcher: Dispatcher;
  readonly #metrics: Metrics | undefined;
  /** Failures are logged at a bounded rate: one client's batch can fail on every event. */
  readonly #failures: LogBudget;

  constructor(opts: ResolvedHandlerOptions, metrics: Metrics | undefined) {
    this.#opts = opts;
    this.#failures = new LogBudget(opts.log);
    this.#dispatcher = createDispatcher(opts.handlers, opts.handlerTimeoutMs);
    this.#metrics = metrics;
  }

  /** Handlers still running past their timeout, and their claims' fate: `idle()` waits for them. */
  get late(): LateWork {
    return this.#dispatcher.late;
  }

  /**
   * One event: typed (an object, its casing, a type this key may send and a handler takes), validated
   * against its type's schema, then processed at most once per messageId. A synchronous handler's
   * result comes back without a turn of the microtask queue.
   */
  accept(
    request: RequestFacts,
    received: unknown,
    what: string,
    raw: string | undefined,
  ): EventResult | Promise<EventResult> {
    let checked: Typed;
    try {
      checked = this.#typed(received, what);
    } catch (err) {
      return this.failed(err, request.apiKey);
    }
    const { type } = checked;
    try {
      // Refusals of a known type: counted and logged under it.
      const { decision } = request;
      if (typeof decision === 'object' && decision.allow !== undefined && !decision.allow.includes(type)) {
        throw forbiddenType(type);
      }
      if (!this.#dispatcher.supports(type)) throw unsupportedType(type);
      const problem = this.#validators[type](checked.event);
      if (problem !== undefined) throw new EndpointError('SEG_INVALID_EVENT', problem);
      const status = this.#process(request, checked, raw);
      if (!isPromise(status)) return { status, type };
      return status.then(
        (settled) => ({ status: settled, type }),
        (err: unknown) => this.failed(err, request.apiKey, type),
      );
    } catch (err) {
      return this.failed(err, request.apiKey, type);
    }
  }

  #typed(received: unknown, what: string): Typed {
    const original = asObject(received, what);
    const event = normalizeEvent(original);
    const { type } = event;
    if (typeof type !== 'string' || type === '') throw new EndpointError('SEG_TYPE_MISSING');
    if (!Object.hasOwn(this.#validators, type)) {
      // Named as sent (its casing), not as normalised.
      const sent = original[fieldKey(original, 'type') ?? 'type'];
      throw unknownType(typeof sent === 'string' ? sent : type);
    }
    return { type: type as EventType, event, original };
  }

  #process(x: RequestFacts, checked: Typed, raw: string | undefined): number | Promise<number> {
    const apiKey = x.apiKey as string;
    const settings = x.settings as Settings;
    const { headers } = x;
    const { type, event, original } = checked;
    const { idempotency, log } = this.#opts;
    const { messageId } = event;
    const run = () =>
      this.#dispatcher.dispatch(
        type,
        event,
        new EventContext(apiKey, settings, headers, log, type, messageId, original, raw),
      );
    if (idempotency === undefined || typeof messageId !== 'string' || messageId === '') return run();
    const outcome = onceEvent(idempotency, apiKey, messageId, run);
    return isPromise(outcome)
      ? outcome.then((status) => this.#counted(status, apiKey, messageId))
      : this.#counted(outcome, apiKey, messageId);
  }

  /** A copy of an event earlier in its batch, answered as that `first` was: a duplicate if it was taken. */
  copied(first: EventResult): void {
    if (first.error === undefined) this.#metrics?.duplicate();
  }

  #counted(status: number | 'duplicate', apiKey: string, messageId: string): number {
    if (status !== 'duplicate') return status;
    // Processed before: the sender missed our answer. Success again, without a second run.
    this.#metrics?.duplicate();
    const { log } = this.#opts;
    // The fingerprint is a SHA-256: not worked out for a line that goes nowhere (a retried batch's
    // accepted events are all duplicates).
    if (!drops(log, 'debug')) log.debug({ source: keyFingerprint(apiKey), messageId }, 'duplicate event');
    return 200;
  }

  /** A refusal as a result; a cause of ours (not the sender's) goes to the log, never to the sender. */
  failed(err: unknown, apiKey: string | undefined, type?: EventType): EventResult {
    return this.#refused(err, apiKey, type, 'event handler failed');
  }

  /**
   * The same for a request that failed outside its events' handlers (a partner's `authenticate` or
   * `settingsSchema` that throws, before any event is taken): logged as that, not as a handler's failure.
   */
  requestFailed(err: unknown, apiKey: string | undefined): EventResult {
    return this.#refused(err, apiKey, undefined, 'request failed');
  }

  #refused(err: unknown, apiKey: string | undefined, type: EventType | undefined, what: string): EventResult {
    const error = toErrorAnswer(err);
    if (error.internal !== undefined) {
      const source = apiKey === undefined ? undefined : keyFingerprint(apiKey);
      this.#failures.error({ err: error.internal, source, status: error.status }, what);
    }
    return { status: error.status, type, error };
  }
}
