import { type ErrorAnswer, toErrorAnswer } from './error-answer.ts';
import { EndpointError } from './errors.ts';
import { type EventRefusals, isPlainObject } from './json.ts';
import { blank, fieldKey, messageIdOf, saysNothing } from './normalize.ts';
import { isPromise } from './promise.ts';
import { bodyTooLarge, storedTooLarge, tooManyEvents } from './refusals.ts';
import { type Route, SEGMENT_LIMITS, segmentBytes } from './routes.ts';
import { lineBytes } from './stored-size.ts';
import type { EventType } from './types.ts';

// The shapes besides one event per request (CONTRACT.md "Related senders"): Segment's Tracking API,
// which every Segment SDK speaks (POST /v1/{type} with one event, POST /v1/batch with
// {"batch": [...]}), and the JSON arrays that Webhooks (Actions) batching sends to the event path.

export interface Carried {
  /** The events, as received (each still to be checked to be an object). */
  readonly events: readonly unknown[];
  /** Whether the answer is a batch's (per-event results) rather than one event's. */
  readonly batch: boolean;
  /**
   * The most one event of it may take as JSON, merged (Segment's Tracking API: 32 KiB); none for a JSON
   * array on the event path, whose events are held to what one event there may be: the body limit.
   */
  readonly eventBytes?: number;
  /**
   * A /v1/batch body's top-level context and integrations, merged into each event by acceptBatch, and its
   * sentAt, each event's that has none of its own (Segment's SDKs date the batch, not its events).
   */
  readonly defaults?: { readonly context: unknown; readonly integrations: unknown; readonly sentAt: unknown };
  readonly refused?: EventRefusals | undefined; // by the parser's guards (json.ts), answered so
}

/**
 * The events a request body carries along `route`. Throws the 400 for a body of the wrong shape, and the
 * 413 for more events than one request may carry, before any of them is looked at.
 */
export function eventsOf(
  value: unknown,
  route: Route,
  text: string | undefined,
  sentBytes?: number,
  refused?: EventRefusals,
): Carried {
  if (route.kind === 'event') {
    if (!Array.isArray(value)) return { events: [value], batch: false };
    return { ...several(value, 'Request body', SEGMENT_LIMITS.arrayEvents), refused };
  }
  if (!isPlainObject(value)) throw new EndpointError('SEG_NOT_OBJECT', 'Request body must be a JSON object');
  const limit = segmentBytes(route);
  // A body a framework parsed is measured by its declared length, or else as JSON again: its text is gone.
  const bytes =
    text === undefined ? (sentBytes ?? Buffer.byteLength(JSON.stringify(value))) : Buffer.byteLength(text);
  if (bytes > limit) throw bodyTooLarge(limit);
  if (route.kind === 'typed') return { events: [typed(value, route.type)], batch: false };
  const body = value;
  const list = body.batch;
  if (!Array.isArray(list))
    throw new EndpointError('SEG_INVALID_EVENT', '"batch" must be an array of events');
  const { events } = several(list, '"batch"', SEGMENT_LIMITS.events);
  const defaults = { context: body.context, integrations: body.integrations, sentAt: body.sentAt };
  return { events, batch: true, defaults, eventBytes: SEGMENT_LIMITS.eventBytes, refused };
}

function several(events: unknown[], what: string, cap: number): Carried {
  if (events.length === 0) throw new EndpointError('SEG_INVALID_EVENT', `${what} holds no events`);
  if (events.length > cap) throw tooManyEvents(what, events.length, cap);
  return { events, batch: true };
}

/**
 * An event posted to /v1/{type}: the path gives the type, which the body may repeat but not contradict.
 * One that says nothing (null, empty) is as none.
 */
function typed(event: Record<string, unknown>, type: EventType): Record<string, unknown> {
  const own = fieldKey(event, 'type');
  if (own === undefined) return { type, ...event };
  const given = event[own];
  if (saysNothing(given)) return { ...event, type };
  if (typeof given === 'string' && given.toLowerCase() === type) return event;
  throw new EndpointError(
    'SEG_INVALID_EVENT',
    `"type" ${JSON.stringify(given)} contradicts the path /v1/${type}`,
  );
}

/**
 * The events of a request with its batch's top-level context, integrations and sentAt merged into each, and
 * the size of each as JSON (UTF-8 bytes), past `budget` in all (with the settings and what a line adds)
 * a 413 for the whole request. Merged and measured one event at a time, so that a context of many keys
 * copied into every event (its keys times the events: 10,000 keys and 1,000 events took seconds and
 * half a GiB) stops at the budget.
 */
function merged(carried: Carried, settingsBytes: number, budget: number) {
  const { events, defaults } = carried;
  // The batch's parts as JSON text once: each event gets a copy of its own, parsed from it.
  const context = jsonOf(defaults?.context);
  const integrations = jsonOf(defaults?.integrations);
  const shared = { context, integrations, sentAt: sentAtOf(defaults?.sentAt) };
  const out = new Array<unknown>(events.length);
  const sizes = new Array<number>(events.length);
  let total = 0;
  for (let i = 0; i < events.length; i++) {
    const event = defaults === undefined ? events[i] : withDefaults(events[i], shared);
    // Measured as sent, its batch's context and integrations in it; its sentAt counts only stored.
    const size = Buffer.byteLength(JSON.stringify(event) ?? '');
    total += lineBytes(size + dated(event, shared.sentAt), settingsBytes);
    if (total > budget) {
      const contextBytes = Buffer.byteLength(context ?? '');
      const integrationsBytes = Buffer.byteLength(integrations ?? '');
      throw storedTooLarge({ budget, total, events: i + 1, settingsBytes, contextBytes, integrationsBytes });
    }
    out[i] = event;
    sizes[i] = size;
  }
  return { events: out, sizes };
}

const jsonOf = (part: unknown): string | undefined =>
  isPlainObject(part) ? JSON.stringify(part) : undefined;

/** What a batch gives each of its events: its context and integrations as JSON, and its sentAt. */
interface Shared {
  readonly context: string | undefined;
  readonly integrations: string | undefined;
  readonly sentAt: string | undefined;
}

// A time's JSON with room to spare (`"2026-12-06T09:00:00.123456789+05:30"` is 37 bytes): the batch's
// sentAt is copied into each of its events, so a long one would count against what they store unnamed.
const MAX_SENT_AT_BYTES = 128;

/**
 * A batch's sentAt, to merge: a string of at most MAX_SENT_AT_BYTES as JSON. Anything else merges nothing,
 * as a context that is not an object: the events are still taken, and an event's own sentAt is checked.
 */
function sentAtOf(sentAt: unknown): string | undefined {
  if (typeof sentAt !== 'string' || sentAt === '') return undefined;
  return Buffer.byteLength(JSON.stringify(sentAt)) <= MAX_SENT_AT_BYTES ? sentAt : undefined;
}

/**
 * A batch's top-level context and integrations (as JSON), under each event's own (which win, key by key),
 * found whatever the event's casing of them (`Context`, `INTEGRATIONS`) and kept under its own key.
 */
function withDefaults(event: unknown, shared: Shared): unknown {
  const { context, integrations } = shared;
  if (!isPlainObject(event)) return event;
  const merged: Record<string, unknown> = { ...event };
  // Under the key normalizeEvent gives the handler: an empty list (PHP's empty map) says nothing there.
  if (context !== undefined) mergeUnder(merged, fieldKey(event, 'context', blank) ?? 'context', context);
  if (integrations !== undefined)
    mergeUnder(merged, fieldKey(event, 'integrations', blank) ?? 'integrations', integrations);
  return merged;
}

/**
 * A batch's sentAt put in `event` (withDefaults' copy) where its own (`sentAt`, `sent_at`, ...) says
 * nothing; the bytes that adds to it as JSON, at most.
 */
function dated(event: unknown, sentAt: string | undefined): number {
  if (sentAt === undefined || !isPlainObject(event)) return 0;
  const key = fieldKey(event, 'sentAt') ?? 'sentAt';
  if (!saysNothing(event[key])) return 0;
  event[key] = sentAt;
  return Buffer.byteLength(JSON.stringify(key)) + Buffer.byteLength(JSON.stringify(sentAt)) + 2;
}

const mergeUnder = (event: Record<string, unknown>, key: string, shared: string): void => {
  event[key] = under(event[key], shared);
};

/**
 * An event's own part with the batch's under it, key by key. The batch's is a copy for each event, all
 * the way down: what one event's handler does to its context is not seen by the next event's.
 */
function under(own: unknown, shared: string): unknown {
  if (isPlainObject(own)) return { ...(JSON.parse(shared) as object), ...own };
  return blank(own) ? JSON.parse(shared) : own;
}

/** What became of one event: the status to answer, its type once known, and the refusal if any. */
export interface EventResult {
  readonly status: number;
  readonly type?: EventType | undefined;
  readonly error?: ErrorAnswer | undefined;
}

// Events of a batch taken between two turns of the event loop: few enough that a batch of the largest
// size holds the loop for a few milliseconds at a time (bench/stall.mjs).
const SLICE = 64;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The events of a batch, each through `accept`, the same steps as a single event, but those the parser's
 * guards refused (`carried.refused`). Their sizes are measured first: an event over Segment's limit is
 * refused on its own, and the whole request when storing all would take more than `budget` bytes;
 * `measured` then hears how many it holds (the request is taken, though some may be refused on their
 * own). They are then taken a slice at a time, yielding to the event loop between slices, so that a large
 * batch does not hold up other connections; `sliced` hears when each slice after the first began, as it ends.
 * With `copied` (duplicates filtered), a copy of an earlier event's messageId is answered as that one,
 * and `copied` hears that one's answer for each copy.
 */
export async function acceptBatch(
  carried: Carried,
  settingsBytes: number,
  budget: number,
  copied: ((first: EventResult) => void) | undefined,
  accept: (event: unknown, index: number) => EventResult | Promise<EventResult>,
  measured: (events: number) => void,
  sliced: (started: number) => void = () => {},
): Promise<EventResult[]> {
  const { events, sizes } = merged(carried, settingsBytes, budget);
  measured(events.length);
  const results: Array<EventResult | Promise<EventResult>> = [];
  // The first event of this batch with each messageId: a copy is answered as it is, once it is (accepted,
  // a duplicate; refused, the same refusal), not met while it runs ("being processed now", a 503 that made
  // a batch whose first copy was refused for good come back forever, its handler run again each time).
  const firstOf = new Map<string, number>();
  let started = -1; // when the slice under way began, after the first (run in the caller's turn)
  for (let index = 0; index < events.length; index++) {
    if (index > 0 && index % SLICE === 0) {
      if (started >= 0) sliced(started);
      await nextTurn();
      started = performance.now();
    }
    const id = copied === undefined ? undefined : messageIdOf(events[index]);
    const first = id === undefined ? undefined : firstOf.get(id);
    const answer = first === undefined ? undefined : results[first];
    if (answer !== undefined) {
      results.push(answer);
      // A rejection is the batch's own, met by Promise.all below: only a settled first is a duplicate.
      if (isPromise(answer)) answer.then(copied, () => {});
      else copied?.(answer);
      continue;
    }
    if (id !== undefined) firstOf.set(id, index);
    const refusal = carried.refused?.get(index);
    const limit = carried.eventBytes ?? Number.POSITIVE_INFINITY;
    if (refusal !== undefined) {
      results.push({ status: 400, error: toErrorAnswer(new EndpointError(refusal.code, refusal.message)) });
    } else if ((sizes[index] as number) > limit) {
      results.push({ status: 413, error: toErrorAnswer(bodyTooLarge(limit, `Event #${index}`)) });
    } else {
      results.push(accept(events[index], index));
    }
  }
  if (started >= 0) sliced(started);
  return Promise.all(results);
}
