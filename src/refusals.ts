import type { ErrorAnswer } from './error-answer.ts';
import { EndpointError, ERRORS, type ErrorCode, quoted } from './errors.ts';

// The endpoint's own refusals, each worded in one place: a catalogue code's answer, and the refusals
// whose message carries a value (a limit, a count, a type).

/** The answer for a catalogue code: what the front door refuses with, before any event is read. */
export function refusal(code: ErrorCode, message?: string): ErrorAnswer {
  return { status: ERRORS[code].status, code, message: message ?? ERRORS[code].message };
}

/** 413: `what` (the request body, its decompressed bytes, one event of a batch) is over `limit` bytes. */
export function bodyTooLarge(limit: number, what = 'Request body'): EndpointError {
  return new EndpointError('SEG_BODY_TOO_LARGE', `${what} is larger than the limit of ${limit} bytes`);
}

/** 413: `what` (the body, `"batch"`) carries `count` events, more than one request may. */
export function tooManyEvents(what: string, count: number, max: number): EndpointError {
  return new EndpointError(
    'SEG_TOO_MANY_EVENTS',
    `${what} holds ${count} events; one request may carry at most ${max}`,
  );
}

/**
 * What made a request's events too large to store: how much of each its settings take, and the batch's
 * context and integrations copied into each (their bytes as JSON, 0 for none).
 */
export interface StoredSize {
  readonly budget: number;
  /** The bytes its events would take so far (each with its settings). */
  readonly total: number;
  readonly events: number;
  readonly settingsBytes: number;
  readonly contextBytes: number;
  readonly integrationsBytes: number;
}

/** A part written with each event is named as a cause once it takes 1/NAMED_SHARE of each or more. */
const NAMED_SHARE = 4;

/**
 * 413: stored, the events of one request would take more than `budget` bytes. The message names the causes
 * the sender's side can change: the settings written with each event, and the batch's context and its
 * integrations copied into each, each when it takes a quarter of an event or more.
 */
export function storedTooLarge(size: StoredSize): EndpointError {
  const { budget, total, events } = size;
  const fills = (bytes: number) => bytes * events * NAMED_SHARE >= total;
  const settings = fills(size.settingsBytes)
    ? `, ${size.settingsBytes} bytes of each event being the X-Segment-Settings it is stored with`
    : '';
  const copied = [
    ...(fills(size.contextBytes) ? ['context'] : []),
    ...(fills(size.integrationsBytes) ? ['integrations'] : []),
  ];
  // Past the budget with its first event: fewer events a request would not help.
  const one = events === 1;
  const into = one ? 'it' : 'each event';
  const batch =
    copied.length > 0 ? `, or less in the batch-level ${copied.join(' and ')} copied into ${into}` : '';
  const what = one ? 'one event of this request' : 'the events of this request';
  const advice = one ? 'send a smaller event' : 'send fewer events a request';
  return new EndpointError(
    'SEG_STORED_TOO_LARGE',
    `Stored, ${what} would take more than ${budget} bytes${settings}: ${advice}${batch}`,
  );
}

/** 501: `type` is none of Segment's event types. */
export function unknownType(type: string): EndpointError {
  return new EndpointError('SEG_TYPE_UNSUPPORTED', `${quoted(type)} is not a Segment event type`);
}

/** 501: no handler takes `type`. */
export function unsupportedType(type: string): EndpointError {
  return new EndpointError('SEG_TYPE_UNSUPPORTED', `This endpoint does not support "${type}" events`);
}

/** 403: the API key may not send `type`. */
export function forbiddenType(type: string): EndpointError {
  return new EndpointError('SEG_TYPE_FORBIDDEN', `This API key is not permitted to send "${type}" events`);
}
