import type { BatchShape } from './json.ts';
import { EVENT_TYPES, type EventType } from './types.ts';

// The paths events come on: the event path, and under it Segment's Tracking API (CONTRACT.md "Related
// senders"), which every Segment SDK speaks: POST /v1/{type} with one event, POST /v1/batch with
// {"batch": [...]}. What each may carry.

/**
 * Segment's own limits on what its Tracking API takes, as it documents them, the cap on events a
 * request that Segment proposes for a batch, and the most events its Webhooks (Actions) put in one. The
 * endpoint's own body limit (`maxBodyBytes`, 512 KiB by default) is apart from these.
 */
export const SEGMENT_LIMITS = Object.freeze({
  eventBytes: 32 * 1024, // 32 KiB: one event, after a batch's context and integrations are merged in
  batchBytes: 500 * 1024, // 500 KiB: one /v1/batch body
  events: 2500, // events in one /v1/batch
  arrayEvents: 4000, // events in one JSON array on the event path: Webhooks (Actions)' largest batch size
});

/** How a request carries its events. */
export type Route =
  | { readonly kind: 'event' }
  | { readonly kind: 'typed'; readonly type: EventType }
  | { readonly kind: 'batch' };

/** The event path's own route: one event, or a JSON array of them. */
export const EVENT_ROUTE: Route = Object.freeze({ kind: 'event' });

/** The Tracking API's paths under the event path: `/v1/track`, ..., `/v1/batch` (and `/v1/import`). */
export function routes(eventPath: string, trackingApi: boolean): ReadonlyMap<string, Route> {
  const table = new Map<string, Route>([[eventPath, EVENT_ROUTE]]);
  if (!trackingApi) return table;
  const base = eventPath.endsWith('/') ? eventPath.slice(0, -1) : eventPath;
  for (const type of EVENT_TYPES) {
    if (type !== 'delete') table.set(`${base}/v1/${type}`, Object.freeze({ kind: 'typed', type }));
  }
  table.set(`${base}/v1/batch`, Object.freeze({ kind: 'batch' }));
  table.set(`${base}/v1/import`, Object.freeze({ kind: 'batch' }));
  return table;
}

/** Where a body along `route` holds its events when it is a batch (json.ts), if it may be one. */
export const batchShape = (route: Route): BatchShape | undefined => BATCH_SHAPES[route.kind];

const BATCH_SHAPES = { event: 'array', batch: 'member', typed: undefined } as const;

/** Segment's limit on a body along `route`, a Tracking API path: 32 KiB a /v1/{type}, 500 KiB a batch. */
export const segmentBytes = (route: Route): number =>
  route.kind === 'typed' ? SEGMENT_LIMITS.eventBytes : SEGMENT_LIMITS.batchBytes;

/**
 * The most a body sent along `route` may hold, decoded: Segment's limit where its path has one, within
 * `maxBodyBytes` (which also holds its bytes as sent, compressed).
 */
export function routeBytes(route: Route, maxBodyBytes: number): number {
  return route.kind === 'event' ? maxBodyBytes : Math.min(maxBodyBytes, segmentBytes(route));
}

/** A UTF-8 byte-order mark, dropped before the body is read as JSON (reader.ts). */
const BOM_BYTES = 3;

/**
 * The bytes a body may take decoded when held to `decodedBytes` (routeBytes) below `maxBytes`: Segment's
 * limit counts the JSON text, as eventsOf does, so there is room for a byte-order mark before it.
 */
export const decodedRoom = (maxBytes: number, decodedBytes: number): number =>
  decodedBytes < maxBytes ? Math.min(maxBytes, decodedBytes + BOM_BYTES) : decodedBytes;
