import { EndpointError, type ErrorAnswer } from './errors.ts';
import { EVENT_TYPES, type EventType } from './types.ts';

// The shapes besides one event per request (CONTRACT.md "Related senders"): Segment's Tracking API,
// which every Segment SDK speaks (POST /v1/{type} with one event, POST /v1/batch with
// {"batch": [...]}), and the JSON arrays that Webhooks (Actions) batching sends to the event path.

/** How a request carries its events. */
export type Route =
  | { readonly kind: 'event' }
  | { readonly kind: 'typed'; readonly type: EventType }
  | { readonly kind: 'batch' };

const EVENT: Route = Object.freeze({ kind: 'event' });

/** One event of the Tracking API at most (Segment's own limit). */
export const MAX_EVENT_BYTES = 32 * 1024; // 32 KiB
/** One /v1/batch request at most (Segment's own limit). */
export const MAX_BATCH_BYTES = 500 * 1024; // 500 KiB
/** Events in one request at most, batch or JSON array (the cap Segment proposes for a batch). */
export const MAX_EVENTS_PER_REQUEST = 2500;

/** The Tracking API's paths under the event path: `/v1/track`, ..., `/v1/batch` (and `/v1/import`). */
export function routes(eventPath: string, trackingApi: boolean): ReadonlyMap<string, Route> {
  const table = new Map<string, Route>([[eventPath, EVENT]]);
  if (!trackingApi) return table;
  const base = eventPath.endsWith('/') ? eventPath.slice(0, -1) : eventPath;
  for (const type of EVENT_TYPES) {
    if (type !== 'delete') table.set(`${base}/v1/${type}`, Object.freeze({ kind: 'typed', type }));
  }
  table.set(`${base}/v1/batch`, Object.freeze({ kind: 'batch' }));
  table.set(`${base}/v1/import`, Object.freeze({ kind: 'batch' }));
  return table;
}

export interface Carried {
  /** The events, as received (each still to be checked to be an object). */
  readonly events: readonly unknown[];
  /** Whether the answer is a batch's (per-event results) rather than one event's. */
  readonly batch: boolean;
}

/**
 * The events a request body carries along `route`. Throws the 400 for a body of the wrong shape, and the
 * 413 for more events than one request may carry, before any of them is looked at.
 */
export function eventsOf(value: unknown, route: Route, text: string | undefined): Carried {
  if (route.kind === 'event') {
    return Array.isArray(value) ? several(value, 'Request body') : { events: [value], batch: false };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new EndpointError('SEG_NOT_OBJECT', 'Request body must be a JSON object');
  }
  const body = value as Record<string, unknown>;
  if (route.kind === 'typed') {
    if (text !== undefined && Buffer.byteLength(text) > MAX_EVENT_BYTES) {
      throw new EndpointError('SEG_BODY_TOO_LARGE', `An event may be at most ${MAX_EVENT_BYTES} bytes`);
    }
    return { events: [typed(body, route.type)], batch: false };
  }
  if (text !== undefined && Buffer.byteLength(text) > MAX_BATCH_BYTES) {
    throw new EndpointError('SEG_BODY_TOO_LARGE', `A batch may be at most ${MAX_BATCH_BYTES} bytes`);
  }
  const list = body.batch;
  if (!Array.isArray(list))
    throw new EndpointError('SEG_INVALID_EVENT', '"batch" must be an array of events');
  const { events } = several(list, '"batch"');
  const { context, integrations } = body;
  return { events: events.map((event) => withDefaults(event, context, integrations)), batch: true };
}

function several(events: unknown[], what: string): Carried {
  if (events.length === 0) throw new EndpointError('SEG_INVALID_EVENT', `${what} holds no events`);
  if (events.length > MAX_EVENTS_PER_REQUEST) {
    throw new EndpointError(
      'SEG_TOO_MANY_EVENTS',
      `${what} holds ${events.length} events; one request may carry at most ${MAX_EVENTS_PER_REQUEST}`,
    );
  }
  return { events, batch: true };
}

// What a stored line holds besides the event and the settings: receivedAt, source and the field names.
const LINE_OVERHEAD = 96; // bytes

/**
 * The size of each event of a multi-event request as JSON (UTF-8 bytes), measured before any is
 * processed. What one request may store is bounded by a multiple of what it sent: a batch's top-level
 * context is merged into every event, and the settings are written with every event, so a small body
 * could otherwise fill the disk. Past `budget` bytes in all, the whole request is refused (413).
 */
export function measure(events: readonly unknown[], settingsBytes: number, budget: number): number[] {
  const sizes = new Array<number>(events.length);
  let total = 0;
  for (let i = 0; i < events.length; i++) {
    const size = Buffer.byteLength(JSON.stringify(events[i]) ?? '');
    sizes[i] = size;
    total += size + settingsBytes + LINE_OVERHEAD;
    if (total > budget) {
      throw new EndpointError(
        'SEG_STORED_TOO_LARGE',
        `Stored, the events of this request would take more than ${budget} bytes: send fewer events a request, or a smaller batch-level context`,
      );
    }
  }
  return sizes;
}

/** An event posted to /v1/{type}: the path gives the type, which the body may repeat but not contradict. */
function typed(event: Record<string, unknown>, type: EventType): Record<string, unknown> {
  const own = Object.keys(event).find((key) => key.toLowerCase() === 'type');
  if (own === undefined) return { type, ...event };
  const given = event[own];
  if (typeof given === 'string' && given.toLowerCase() === type) return event;
  throw new EndpointError(
    'SEG_INVALID_EVENT',
    `"type" ${JSON.stringify(given)} contradicts the path /v1/${type}`,
  );
}

/** A batch's top-level context and integrations, under each event's own (which win, key by key). */
function withDefaults(event: unknown, context: unknown, integrations: unknown): unknown {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return event;
  const own = event as Record<string, unknown>;
  const merged: Record<string, unknown> = { ...own };
  if (isObject(context))
    merged.context = isObject(own.context) ? { ...context, ...own.context } : (own.context ?? context);
  if (isObject(integrations)) {
    merged.integrations = isObject(own.integrations)
      ? { ...integrations, ...own.integrations }
      : (own.integrations ?? integrations);
  }
  return merged;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** What became of one event of a batch. */
export interface EventResult {
  readonly index: number;
  readonly status: number;
  readonly code?: string;
  readonly message?: string;
}

const MAX_LISTED = 100; // refused events named in the answer; the count says how many in all

/**
 * A batch's answer. All accepted: 200. Otherwise the sender may only retry the whole request, so:
 * if any event failed for a reason worth retrying (5xx but 501, 429), a 503, and the retry reprocesses
 * only those (the accepted ones are answered as duplicates by their messageId); if every failure is
 * final (4xx, 501), a 400, which Segment does not retry. The message counts and lists the refused.
 */
export function batchAnswer(results: readonly EventResult[]): ErrorAnswer | undefined {
  const refused = results.filter((r) => r.status >= 300);
  if (refused.length === 0) return undefined;
  const retryable = refused.filter((r) => r.status === 429 || (r.status >= 500 && r.status !== 501));
  const listed = refused
    .slice(0, MAX_LISTED)
    .map((r) => `#${r.index}: ${r.status} ${r.message ?? ''}`.trim())
    .join('; ');
  const more = refused.length > MAX_LISTED ? `; and ${refused.length - MAX_LISTED} more` : '';
  const summary = `${results.length - refused.length} of ${results.length} events accepted`;
  if (retryable.length > 0) {
    return {
      status: 503,
      code: 'SEG_BATCH_RETRY',
      message: `${summary}; ${retryable.length} can be retried: ${listed}${more}`,
    };
  }
  return { status: 400, code: 'SEG_BATCH_REFUSED', message: `${summary}; refused: ${listed}${more}` };
}
