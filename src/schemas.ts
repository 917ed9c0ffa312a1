import { type Static, Type } from '@sinclair/typebox';
import type { EventType } from './types.ts';

// One schema per event type of Segment's spec, lenient where real payloads are (CONTRACT.md "Leniency"):
// any extra key is kept, `context`/`integrations` may be null or even [], timestamps are any string,
// `version` a number or a string. Strict only where the spec requires a field.
//
// These run on the normalised event: top-level keys already in canonical casing, `type` in lower case.

// A field that may take several JSON types is one `type` list, not a union of schemas: the same values
// pass, and Ajv's code for it is a fraction of the size. Size counts twice: V8 optimises a function
// after a number of calls that grows with its bytecode, and runs the bytecode until then (bench/README.md,
// "Smaller validators"; bench/HISTORY.md, "Validators that never reached optimised code").
// A string's length limits apply to strings only, an array's to arrays only (JSON Schema).

/** Any string, or null. */
const NullableString = Type.Unsafe<string | null>({ type: ['string', 'null'] });

/** An identifier: a non-empty string, or a number (some server SDKs send numeric user ids). */
export const Id = Type.Unsafe<string | number>({ type: ['string', 'number'], minLength: 1 });

/**
 * A free-form bag of keys (traits, properties). `[]` is accepted: PHP encodes an empty map that way. A
 * handler gets it, or null, as `{}` (normalize.ts), so its type is a map's.
 */
const Bag = Type.Unsafe<Record<string, unknown>>({
  type: ['object', 'array', 'null'],
  maxItems: 0,
});

/**
 * An identifier, or null (or empty) where another field may say who did it: `{ userId: 'u1', anonymousId:
 * '' }` says who. Whether one of them does is `Identified`'s to say, of a non-empty one.
 */
const NullableId = Type.Unsafe<string | number | null>({ type: ['string', 'number', 'null'] });

const common = {
  messageId: Type.Optional(Type.Unsafe<string | null>({ type: ['string', 'null'], maxLength: 100 })),
  userId: Type.Optional(NullableId),
  anonymousId: Type.Optional(NullableId),
  context: Type.Optional(Type.Unknown()),
  integrations: Type.Optional(Type.Unknown()),
  timestamp: Type.Optional(NullableString),
  originalTimestamp: Type.Optional(NullableString),
  sentAt: Type.Optional(NullableString),
  receivedAt: Type.Optional(NullableString),
  version: Type.Optional(Type.Unsafe<number | string | null>({ type: ['number', 'string', 'null'] })),
  channel: Type.Optional(NullableString),
  projectId: Type.Optional(NullableString),
};

/** identify, track, page, screen and group say who did it: a userId or an anonymousId. */
const Identified = Type.Union([Type.Object({ userId: Id }), Type.Object({ anonymousId: Id })]);

const open = { additionalProperties: true };
const Name = Type.Optional(NullableString);
const Properties = Type.Optional(Bag);

export const IdentifyEvent = Type.Intersect([
  Type.Object({ type: Type.Literal('identify'), ...common, traits: Properties }, open),
  Identified,
]);

export const TrackEvent = Type.Intersect([
  Type.Object(
    { type: Type.Literal('track'), ...common, event: Type.String({ minLength: 1 }), properties: Properties },
    open,
  ),
  Identified,
]);

export const PageEvent = Type.Intersect([
  Type.Object(
    { type: Type.Literal('page'), ...common, name: Name, category: Name, properties: Properties },
    open,
  ),
  Identified,
]);

export const ScreenEvent = Type.Intersect([
  Type.Object(
    { type: Type.Literal('screen'), ...common, name: Name, category: Name, properties: Properties },
    open,
  ),
  Identified,
]);

export const GroupEvent = Type.Intersect([
  Type.Object({ type: Type.Literal('group'), ...common, groupId: Id, traits: Properties }, open),
  Identified,
]);

export const AliasEvent = Type.Object(
  { type: Type.Literal('alias'), ...common, previousId: Id, userId: Id },
  open,
);

/** A user-deletion request (GDPR/CCPA) the partner must honour. */
export const DeleteEvent = Type.Object({ type: Type.Literal('delete'), ...common, userId: Id }, open);

// The source of truth, read at build time: `make build` compiles these with Ajv into
// generated/validators.ts (standalone code), so that neither TypeBox nor Ajv is loaded at run time.
// Run time and the public API use only the types below (erased) and the generated plain schemas.
export const schemas = {
  identify: IdentifyEvent,
  track: TrackEvent,
  page: PageEvent,
  screen: ScreenEvent,
  group: GroupEvent,
  alias: AliasEvent,
  delete: DeleteEvent,
} as const;

export type { EventType } from './types.ts';

export type IdentifyEvent = Static<typeof IdentifyEvent>;
export type TrackEvent = Static<typeof TrackEvent>;
export type PageEvent = Static<typeof PageEvent>;
export type ScreenEvent = Static<typeof ScreenEvent>;
export type GroupEvent = Static<typeof GroupEvent>;
export type AliasEvent = Static<typeof AliasEvent>;
export type DeleteEvent = Static<typeof DeleteEvent>;

/** The event each type's handler receives. */
export interface EventMap {
  identify: IdentifyEvent;
  track: TrackEvent;
  page: PageEvent;
  screen: ScreenEvent;
  group: GroupEvent;
  alias: AliasEvent;
  delete: DeleteEvent;
}

export type SegmentEvent = EventMap[EventType];
