// The error catalogue. Every answer other than 200/202 comes from here: a stable `code` (what tests and
// operators match on), an HTTP `status` (what Segment's retry logic acts on) and a default message
// (what the customer reads in Segment's debugger).
//
// Segment retries timeouts, 429 and 5xx except 501; every other 4xx is final. So a failure the sender can
// fix is a 4xx, a transient one of ours a 5xx.

export interface ErrorSpec {
  readonly status: number;
  readonly message: string;
}

export const ERRORS = {
  SEG_NOT_FOUND: { status: 404, message: 'Not found: events are accepted on the configured path only' },
  SEG_METHOD_NOT_ALLOWED: { status: 405, message: 'Method not allowed: send events with POST' },
  SEG_AUTH_MISSING: { status: 401, message: 'Missing API key: send it as the Basic auth username' },
  SEG_AUTH_MALFORMED: {
    status: 401,
    message: 'Malformed Authorization header: expected Basic base64(apiKey:)',
  },
  SEG_AUTH_UNKNOWN: { status: 401, message: 'Invalid API key' },
  SEG_FORBIDDEN: { status: 403, message: 'This API key is not permitted to send events here' },
  SEG_TYPE_FORBIDDEN: { status: 403, message: 'This API key is not permitted to send this event type' },
  SEG_SETTINGS_INVALID: { status: 400, message: 'X-Segment-Settings must be base64 of a UTF-8 JSON object' },
  SEG_LENGTH_REQUIRED: { status: 411, message: 'Content-Length or chunked Transfer-Encoding is required' },
  SEG_LENGTH_INVALID: { status: 400, message: 'Content-Length must be a non-negative integer' },
  SEG_BODY_TOO_LARGE: { status: 413, message: 'Request body is too large' },
  SEG_BODY_TIMEOUT: { status: 408, message: 'Request body was not received in time' },
  SEG_BODY_ABORTED: { status: 400, message: 'Request body ended before Content-Length bytes were received' },
  SEG_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Content-Type must be application/json' },
  SEG_UNSUPPORTED_ENCODING: { status: 415, message: 'Content-Encoding must be gzip, deflate or none' },
  SEG_BAD_ENCODING: { status: 400, message: 'Request body does not match its Content-Encoding' },
  SEG_SIGNATURE_MISSING: { status: 401, message: 'X-Segment-Signature or X-Signature is required' },
  SEG_SIGNATURE_INVALID: {
    status: 401,
    message: 'X-Segment-Signature or X-Signature does not match the body',
  },
  SEG_SIGNATURE_PARTIAL: {
    status: 401,
    message:
      'X-Signature signs only the first event of this batch: enable "Use X-Segment-Signature Header" in the Segment webhook destination settings',
  },
  SEG_SIGNATURE_SETTINGS: {
    status: 401,
    message:
      'X-Segment-Settings is stored with the event but no signature covers it: send signed requests without it',
  },
  SEG_INVALID_UTF8: { status: 400, message: 'Request body is not valid UTF-8' },
  SEG_INVALID_JSON: { status: 400, message: 'Request body is not valid JSON' },
  SEG_NOT_OBJECT: { status: 400, message: 'Request body must be a JSON object' },
  SEG_FORBIDDEN_KEY: { status: 400, message: 'Request body contains a forbidden key' },
  SEG_TOO_DEEP: { status: 400, message: 'Request body is nested too deeply' },
  SEG_TYPE_MISSING: { status: 400, message: '"type" is required and must be a string' },
  SEG_TYPE_UNSUPPORTED: { status: 501, message: 'Event type is not supported' },
  SEG_INVALID_EVENT: { status: 400, message: 'Invalid event' },
  SEG_RETRY: { status: 503, message: 'Temporarily unable to process the event, retry later' },
  SEG_HANDLER_TIMEOUT: { status: 503, message: 'The event took too long to process, retry later' },
  SEG_DRAINING: { status: 503, message: 'The endpoint is restarting, retry later' },
  SEG_OVERLOADED: { status: 503, message: 'The endpoint is at capacity, retry later' },
  SEG_DUPLICATE_IN_FLIGHT: { status: 503, message: 'This event is being processed now, retry later' },
  SEG_IDEMPOTENCY_UNAVAILABLE: {
    status: 503,
    message: 'The endpoint cannot check for duplicates right now, retry later',
  },
  SEG_BAD_REQUEST: { status: 400, message: 'Malformed HTTP request' },
  SEG_EXPECTATION_FAILED: { status: 417, message: 'Only "Expect: 100-continue" is supported' },
  SEG_TRANSFER_CODING: { status: 501, message: 'Only chunked Transfer-Encoding is supported' },
  SEG_HEADERS_TOO_LARGE: { status: 431, message: 'Request headers are too large' },
  SEG_REQUEST_TIMEOUT: { status: 408, message: 'Request was not received in time' },
  SEG_BATCH_REFUSED: { status: 400, message: 'Some events of the batch were refused' },
  SEG_BATCH_RETRY: { status: 503, message: 'Some events of the batch can be retried' },
  SEG_TOO_MANY_EVENTS: { status: 413, message: 'The request carries too many events' },
  SEG_STORED_TOO_LARGE: {
    status: 413,
    message: 'The events of this request would take too much space stored',
  },
  SEG_RATE_LIMITED: { status: 429, message: 'Too many events for this API key, retry later' },
  SEG_CPU_SHARE: {
    status: 429,
    message:
      "This API key's requests took more than their share of the endpoint while others waited; retry later",
  },
  SEG_STORE_UNAVAILABLE: { status: 503, message: 'The endpoint cannot store events right now, retry later' },
  SEG_HTTP_VERSION: { status: 505, message: 'HTTP version not supported: send HTTP/1.1' },
  SEG_INTERNAL: { status: 500, message: 'Internal error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

// Marks every EndpointError, whichever copy of this module made it: the one-file bundle and the SEA
// binary hold their own copy of the classes, and a --handlers module imports the package's.
const ENDPOINT_ERROR = Symbol.for('segment-endpoint.EndpointError');

/** An error's options, and what its answer asks of the sender. */
type WaitOptions = ErrorOptions & {
  /** Seconds the sender is asked to wait (`Retry-After`), for a refusal it retries. */
  retryAfter?: number | undefined;
};

/** Sets Error.stackTraceLimit where it may be set (a host that froze Error keeps its stacks). */
function quietStack(limit: number): void {
  try {
    Error.stackTraceLimit = limit;
  } catch {
    // frozen: left as it is
  }
}

/** Base class of every error the endpoint answers with. `status` and `code` are what the sender sees. */
export class EndpointError extends Error {
  declare readonly [ENDPOINT_ERROR]: true;
  readonly code: ErrorCode;
  readonly status: number;
  /** Seconds to wait before retrying, when the answer says (429). */
  readonly retryAfter: number | undefined;

  constructor(code: ErrorCode, message?: string, options?: WaitOptions) {
    // A refusal is an answer, not a fault: made without a stack, which cost ~10 µs each, 2,500 times for
    // a batch of refused events. What caused it, when anything did, keeps its own (`cause`); a 500 made
    // as one (SEG_INTERNAL, which is logged) keeps its own too.
    const limit = Error.stackTraceLimit;
    if (code !== 'SEG_INTERNAL') quietStack(0);
    try {
      super(message ?? ERRORS[code].message, options);
    } finally {
      quietStack(limit);
    }
    this.name = new.target.name;
    this.code = code;
    this.status = ERRORS[code].status;
    this.retryAfter = options?.retryAfter;
  }
}
Object.defineProperty(EndpointError.prototype, ENDPOINT_ERROR, { value: true });

type OwnError = Pick<EndpointError, 'status' | 'code' | 'message' | 'retryAfter'>;

/**
 * `err` as an EndpointError of this copy of the module or of another (see ENDPOINT_ERROR). Another
 * copy's is trusted no further than the catalogue: its code sets the status, whatever else it holds.
 */
export function endpointError(err: unknown): OwnError | undefined {
  if (err instanceof EndpointError) return err;
  if (typeof err !== 'object' || err === null || !(ENDPOINT_ERROR in err)) return undefined;
  const { code, message, retryAfter } = err as { code?: unknown; message?: unknown; retryAfter?: unknown };
  if (typeof code !== 'string' || !Object.hasOwn(ERRORS, code)) return undefined;
  const known = code as ErrorCode;
  return {
    code: known,
    status: ERRORS[known].status,
    message: typeof message === 'string' ? message : ERRORS[known].message,
    retryAfter: typeof retryAfter === 'number' ? retryAfter : undefined,
  };
}

// The classes partners throw from handlers, named as in Segment's Functions runtime so code moves across.

/** A class of refusal a handler throws: its catalogue code and the message it says by default. */
function handlerError(code: ErrorCode, fallback: string) {
  return class extends EndpointError {
    constructor(message = fallback, options?: WaitOptions) {
      super(code, message, options);
    }
  };
}

/** The event is malformed for this destination: 400, final. */
export class ValidationError extends handlerError('SEG_INVALID_EVENT', 'Invalid event') {}

/** The event payload cannot be used (missing or wrong data): 400, final. */
export class InvalidEventPayload extends handlerError('SEG_INVALID_EVENT', 'Invalid event payload') {}

/** This destination does not take this kind of event: 501, which Segment does not retry. */
export class EventNotSupported extends handlerError('SEG_TYPE_UNSUPPORTED', 'Event type is not supported') {}

/** A transient failure (a downstream is down, a rate limit): 503, which Segment retries for hours. */
export class RetryError extends handlerError('SEG_RETRY', ERRORS.SEG_RETRY.message) {}

/** The API key is unknown, revoked or expired: 401. */
export class UnauthorizedError extends handlerError('SEG_AUTH_UNKNOWN', ERRORS.SEG_AUTH_UNKNOWN.message) {}

/** The API key is valid but may not do this: 403. */
export class ForbiddenError extends handlerError('SEG_FORBIDDEN', ERRORS.SEG_FORBIDDEN.message) {}

const MAX_MESSAGE = 1_000; // characters of a refusal's message: Segment shows it, no one reads more

/** `text` cut at `max` characters, never inside a surrogate pair (no half an emoji), marked as cut. */
export const capped = (text: string, max = MAX_MESSAGE) =>
  text.length > max ? `${text.slice(0, max).replace(/[\ud800-\udbff]$/, '')}…` : text;

/** A value the sender gave, as it appears in a message: JSON-quoted, cut at `max` characters. */
export function quoted(value: string, max = 64): string {
  return JSON.stringify(capped(value, max));
}

/** A bad option's value, for an error message: strings quoted, objects and functions by their kind. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  return value === null ? 'null' : typeof value === 'object' ? 'an object' : String(value);
}
