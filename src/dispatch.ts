import { AsyncResource } from 'node:async_hooks';
import type { Context, EventContext } from './context.ts';
import { Deadline, Deadlines } from './deadlines.ts';
import { EndpointError, type ErrorCode } from './errors.ts';
import { LateWork } from './late-work.ts';
import { isPromise } from './promise.ts';
import type { EventMap } from './schemas.ts';
import type { Settings } from './settings.ts';
import type { EventType } from './types.ts';

export type { Context } from './context.ts';

/** The statuses of Segment's partner contract that a handler may answer with. */
export type HandlerStatus = 200 | 202 | 400 | 401 | 403 | 500 | 501 | 503;

/**
 * Return nothing for 200 (processed); `{ status: 202 }` for accepted, to be processed later; another
 * status of the contract to refuse, with a `message` for the customer (not sent with a 500). A status
 * outside the contract is a bug in the handler: answered 500 and logged. Anything else without a
 * `status` (what a driver returned: a queue's length, a query's result, `true`) is a 200, as nothing is;
 * an HTTP client's response (fetch's, axios's, got's) is no answer: a 200 if 2xx, else a 500.
 */
export type HandlerResult =
  // biome-ignore lint/suspicious/noConfusingVoidType: a handler that returns nothing is the common case
  | void
  | { readonly status: HandlerStatus; readonly message?: string | undefined }
  // Not `statusCode`: it looks like a status, and no result is read for one (a thrown error's is). Not
  // a promise or another thenable: it is awaited, and what it settles with is the result, checked so.
  | (object & { readonly status?: never; readonly statusCode?: never; readonly then?: never })
  | string
  | number
  | boolean
  | bigint
  | null;

export type EventHandler<E, S = Settings> = (
  event: E,
  ctx: Context<S>,
) => HandlerResult | PromiseLike<HandlerResult>;

/**
 * The partner's code: one function per event type it supports. A type without one answers 501. `S`: the
 * customer's settings (`ctx.settings`), as `settingsSchema` says.
 */
export type Handlers<S = Settings> = { readonly [K in EventType]?: EventHandler<EventMap[K], S> | undefined };

type AnyHandler = (event: unknown, ctx: Context) => HandlerResult | PromiseLike<HandlerResult>;

export interface Dispatcher {
  /** Whether a handler is registered for this type. */
  supports(type: EventType): boolean;
  /** Runs the type's handler (one it `supports`): the status to answer, or a rejection to map to one. */
  dispatch(type: EventType, event: unknown, ctx: EventContext): number | Promise<number>;
  /** Handlers still running past their timeout, and what follows their end (`afterOverdue`). */
  readonly late: LateWork;
}

/**
 * Builds the dispatch table once: a null-prototype object keyed by type, so a `type` such as
 * `"constructor"` or `"__proto__"` finds nothing. A synchronous handler is answered without a timer;
 * an asynchronous one races `timeoutMs` (on one deadline list for all of them, not a timer each), after
 * which `ctx.signal` fires and the answer is 503.
 */
export function createDispatcher(handlers: Handlers, timeoutMs: number): Dispatcher {
  const table = Object.create(null) as Record<EventType, AnyHandler | undefined>;
  for (const [type, handler] of Object.entries(handlers)) {
    if (handler !== undefined) table[type as EventType] = handler as AnyHandler;
  }
  const deadlines = new Deadlines(timeoutMs);
  const overdueMs = Math.min(timeoutMs * OVERDUE_TIMEOUTS, OVERDUE_MAX_MS);
  const late = new LateWork();
  const supports = (type: EventType) => table[type] !== undefined;
  const dispatch: Dispatcher['dispatch'] = (type, event, ctx) => {
    // The pipeline asked `supports` first: a type without a handler never gets here.
    const result = (table[type] as AnyHandler)(event, ctx);
    if (!isPromise(result)) return statusOf(result);
    return new Promise<number>((resolve, reject) => {
      const run = new HandlerRun(ctx, reject, overdueMs, late);
      deadlines.add(run);
      // Adopted as `await` adopts it: a thenable of a driver that fulfils with a promise (a lazy job's
      // work) has that promise's outcome, not the promise itself taken for a result without a status.
      // A native promise is passed through as it is.
      Promise.resolve(result).then(
        (value) => {
          run.cancel();
          // A refusal it returned, or a status outside the contract, is thrown here: answered as such.
          try {
            resolve(statusOf(value));
            run.ended(true);
          } catch (err) {
            reject(err);
            run.ended(false);
          }
        },
        (err: unknown) => {
          run.cancel();
          reject(err);
          run.ended(false);
        },
      );
    });
  };
  return { supports, dispatch, late };
}

/**
 * How long after its timeout a handler still running keeps its event claimed (`overdueOutcome`), as a
 * multiple of the timeout: 20 s with the default 4 s, under the 30 s a Redis claim lives.
 */
const OVERDUE_TIMEOUTS = 5;
const OVERDUE_MAX_MS = 20_000;

/** Each handler answered 503 at its timeout and still running, by the error it was answered. */
const overdue = new WeakMap<object, { readonly outcome: Promise<boolean>; readonly late: LateWork }>();

/**
 * For the SEG_HANDLER_TIMEOUT an event was answered with: whether its handler, still running then, went
 * on to succeed (true) or failed, or was still running `OVERDUE_TIMEOUTS` timeouts later (false). The
 * duplicate filter keeps the event claimed until then (once.ts): a copy meanwhile does not run it again.
 */
export function overdueOutcome(err: unknown): Promise<boolean> | undefined {
  return typeof err === 'object' && err !== null ? overdue.get(err)?.outcome : undefined;
}

/** Work that follows the end of the handler `err` was answered for (its claim's fate): idle() waits for it. */
export function afterOverdue(err: unknown, work: Promise<unknown>): void {
  if (typeof err === 'object' && err !== null) overdue.get(err)?.late.track(work);
}

/**
 * An asynchronous handler's run, on the dispatcher's deadline list. Its timeout fires from the list's
 * timer: `ctx.signal`'s listeners run in the handler's own async context all the same.
 */
class HandlerRun extends Deadline {
  readonly #scope = new AsyncResource('segment-endpoint.handler');
  /** Set once the run is past its timeout: told how the handler ended. */
  #overdue: ((succeeded: boolean) => void) | undefined;

  constructor(
    readonly ctx: EventContext,
    readonly reject: (err: unknown) => void,
    /** How long past the timeout the handler's end is still waited for (`overdueOutcome`). */
    readonly overdueMs: number,
    readonly late: LateWork,
  ) {
    super();
  }

  override expired(): void {
    const timedOut = new EndpointError('SEG_HANDLER_TIMEOUT');
    const outcome = new Promise<boolean>((resolve) => {
      // Given up after the poll that follows the limit's timer: a handler that ended while the loop was
      // held past it (its reply read by that poll) is heard first, its claim not released for a copy.
      const limit = setTimeout(() => setImmediate(resolve, false), this.overdueMs);
      limit.unref();
      this.#overdue = (succeeded) => {
        clearTimeout(limit);
        resolve(succeeded);
        this.late.caughtUp();
      };
    });
    overdue.set(timedOut, { outcome, late: this.late });
    this.late.track(outcome);
    this.late.overran();
    this.#scope.runInAsyncScope(() => {
      this.ctx.abort(timedOut);
      this.reject(timedOut);
    });
  }

  /** The handler ended: `succeeded` if with a success. Heard only past the timeout. */
  ended(succeeded: boolean): void {
    this.#overdue?.(succeeded);
  }
}

// The refusals a handler may return, by status: the catalogue code each is answered with.
const REFUSALS: Readonly<Record<number, ErrorCode>> = Object.freeze({
  400: 'SEG_INVALID_EVENT',
  401: 'SEG_AUTH_UNKNOWN',
  403: 'SEG_FORBIDDEN',
  500: 'SEG_INTERNAL',
  501: 'SEG_TYPE_UNSUPPORTED',
  503: 'SEG_RETRY',
});

/**
 * The status a handler's result answers. A result without `status` (nothing, or whatever a driver
 * returned) is a 200; a refusal is thrown as its catalogue error, so it is answered like a thrown one.
 */
function statusOf(result: unknown): number {
  if (typeof result !== 'object' || result === null) return 200;
  // Each read once: a getter's second answer could differ from the one that decided.
  const { status, statusCode, headers, message } = result as Record<string, unknown>;
  const response = responseStatus(status, statusCode, headers, message);
  if (response !== undefined) {
    if (Number.isInteger(response) && response >= 200 && response < 300) return 200;
    // Not sent: the sender sees a plain 500 and retries, the operator reads this line in the log.
    throw new Error(
      `The handler returned an HTTP client's response with status ${response}, not an answer: ` +
        'throw an error for it, or return { status }',
    );
  }
  if (!('status' in result)) return 200;
  if (status === 200 || status === 202) return status;
  const code = typeof status === 'number' && Object.hasOwn(REFUSALS, status) ? REFUSALS[status] : undefined;
  if (code === undefined) {
    // Not sent: the sender sees a plain 500, the operator this line in the log.
    throw new Error(
      `The handler returned { status: ${JSON.stringify(status)} }: a handler may return ${Object.keys(REFUSALS).join(', ')}, 200 or 202`,
    );
  }
  const own = status !== 500 && typeof message === 'string' && message !== '' ? message : undefined;
  throw new EndpointError(code as ErrorCode, own);
}

/**
 * The status of an HTTP client's response returned as it came (from a handler in JavaScript, or one the
 * types could not see: axios's is inferred to fit), which is no answer of the handler's: one with headers
 * and no message for the customer (fetch's Response, axios's, got's, node:http's), or a numeric
 * `statusCode` without a `status`. Taken for an answer, a downstream's 401 was the customer's bad key
 * (final), a failed one with `statusCode` a 200: the event lost. Only a 2xx delivered it (not a redirect
 * left unfollowed, nor a network error's 0).
 */
function responseStatus(status: unknown, statusCode: unknown, headers: unknown, message: unknown) {
  const response = typeof headers === 'object' && headers !== null && message === undefined;
  const code = response && typeof status === 'number' ? status : statusCode;
  if (typeof code !== 'number' || Number.isNaN(code)) return undefined;
  return response || status === undefined ? code : undefined;
}
