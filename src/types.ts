/** The event types of Segment's spec, each with a schema in schemas.ts. */
export const EVENT_TYPES = Object.freeze([
  'identify',
  'track',
  'page',
  'screen',
  'group',
  'alias',
  'delete',
] as const);

export type EventType = (typeof EVENT_TYPES)[number];
