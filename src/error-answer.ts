// What the sender is told of anything a handler (or the endpoint) threw: the status Segment's retry logic
// acts on, a stable code, and a message the customer may read; the cause kept for the log when it is ours.

import { capped, ERRORS, endpointError } from './errors.ts';

export interface ErrorAnswer {
  readonly status: number;
  readonly code: string;
  readonly message: string;
  /** Seconds the sender is asked to wait (a 429's `Retry-After`). */
  readonly retryAfter?: number;
  /** Set when the error is ours rather than the sender's: the caller logs it, the client never sees it. */
  readonly internal?: unknown;
}

const GENERIC_500 = ERRORS.SEG_INTERNAL.message;

/**
 * Maps anything thrown to what the sender is told. Our catalogue first; then the ecosystem's convention of
 * a numeric `status`/`statusCode` (http-errors, boom's output), unless it is a downstream's refusal
 * (`fromDownstream`); then a generic 500 whose cause is kept for the log only. A 5xx from a foreign error
 * never exposes its message: it may carry internals.
 */
export function toErrorAnswer(err: unknown): ErrorAnswer {
  try {
    return answerFor(err);
  } catch {
    // A value whose every property access throws (itself, often): nothing of it can be read, or logged.
    return { status: 500, code: 'SEG_INTERNAL', message: GENERIC_500, internal: new Error(UNREADABLE) };
  }
}

const UNREADABLE = 'the handler threw a value that throws when read';
const MAX_RETRY_AFTER = 86_400; // a day: a longer wait is no wait a sender keeps
const MAX_CODE = 100; // characters of a foreign refusal's code: a name, not a text

type Foreign = Partial<
  Record<'status' | 'statusCode' | 'message' | 'code' | 'retryAfter' | 'expose', unknown> &
    Record<'response' | 'headers' | 'body' | 'raw', unknown>
>;

function answerFor(err: unknown): ErrorAnswer {
  const own = endpointError(err);
  if (own !== undefined) {
    const { status, code, message, retryAfter } = own;
    // Our own 500 (or a partner's EndpointError('SEG_INTERNAL', ...)) says nothing of its cause either.
    if (status === 500) return { status, code, message: GENERIC_500, internal: err };
    if (retryAfter === undefined) return { status, code, message: capped(message) };
    return { status, code, message: capped(message), retryAfter: delaySeconds(own) };
  }
  if (typeof err === 'object' && err !== null) {
    const e = err as Foreign;
    const status = typeof e.status === 'number' ? e.status : e.statusCode;
    if (typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599) {
      // A downstream's refusal would be final (a 4xx but 429, or 501): a 500 has Segment retry the event.
      if ((status < 500 ? status !== 429 : status === 501) && fromDownstream(e)) {
        return { status: 500, code: 'SEG_INTERNAL', message: GENERIC_500, internal: err };
      }
      // A wait of its own (a downstream's Retry-After, carried on), for the statuses that are retried later.
      const wait = status === 429 || status === 503 ? { retryAfter: delaySeconds(e) } : {};
      if (status >= 500) {
        // Neither the message nor the code of a foreign 5xx is ours to show: a driver's code is an internal.
        return { status, code: `HTTP_${status}`, message: statusMessage(status), internal: err, ...wait };
      }
      const code = typeof e.code === 'string' ? capped(e.code, MAX_CODE) : `HTTP_${status}`;
      const message = typeof e.message === 'string' && e.message !== '' ? e.message : statusMessage(status);
      return { status, code, message: capped(message), ...wait };
    }
  }
  // A throw or rejection without a reason is logged as one, not silently.
  const internal = err ?? new Error(`the handler threw or rejected with ${String(err)}`);
  return { status: 500, code: 'SEG_INTERNAL', message: GENERIC_500, internal };
}

/**
 * An HTTP client's error about another server's answer, thrown as it came: axios, Octokit and superagent
 * keep its `response`, undici its `headers` and `body`, Stripe its `headers` and `raw`. Its status is
 * that server's answer to the partner's call (an expired token of theirs), not to Segment's event: a 4xx
 * or 501 would be final, and the event dropped. A 500 has it retried, and logged. An error made to be an
 * answer says so (http-errors' `expose`), headers of its own or not.
 */
function fromDownstream(e: Foreign): boolean {
  if (typeof e.expose === 'boolean') return false;
  const some = (part: unknown) => typeof part === 'object' && part !== null;
  return some(e.response) || (some(e.headers) && (e.body !== undefined || some(e.raw)));
}

/** RFC 9110 §10.2.3: delay-seconds, a whole number from 1, whatever a partner's error or a rate says. */
function delaySeconds({ retryAfter }: { retryAfter?: unknown }): number {
  return typeof retryAfter === 'number' && retryAfter >= 1
    ? Math.min(Math.ceil(retryAfter), MAX_RETRY_AFTER)
    : 1;
}

function statusMessage(status: number): string {
  if (status === 501) return ERRORS.SEG_TYPE_UNSUPPORTED.message;
  if (status >= 500) return status === 500 ? GENERIC_500 : ERRORS.SEG_RETRY.message;
  return `Request rejected (${status})`;
}
