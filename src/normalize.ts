// "The casing on these fields will vary by customer, so be ready to accept any casing" (Segment's partner
// docs): `userId`, `UserId`, `user_id` and `USERID` are one field. Keys are compared by their squashed form
// (lower case, no underscores or dashes); values are not rewritten (but one, in normalizeEvent): the
// customer's data stays as sent.

const SPEC_FIELDS = [
  'type',
  'messageId',
  'userId',
  'anonymousId',
  'groupId',
  'previousId',
  'event',
  'name',
  'category',
  'traits',
  'properties',
  'context',
  'integrations',
  'timestamp',
  'originalTimestamp',
  'sentAt',
  'receivedAt',
  'version',
  'channel',
  'projectId',
] as const;

const SQUASH_RE = /[_\-\s]/g;

/** The lookup form of a key: `first_name`, `FirstName` and `FIRSTNAME` all squash to `firstname`. */
export function squash(key: string): string {
  return key.replace(SQUASH_RE, '').toLowerCase();
}

const CANONICAL = new Set<string>(SPEC_FIELDS);
const BY_SQUASHED: ReadonlyMap<string, string> = new Map(SPEC_FIELDS.map((f) => [squash(f), f]));

/**
 * Finds a key in an object whatever its casing: `field(traits, 'firstName')` finds `firstName`,
 * `first_name`, `FirstName` or `FIRSTNAME`. An exact match wins, unless it says nothing (null or empty)
 * and a variant holds a value; own keys only.
 */
export function field(obj: unknown, name: string): unknown {
  if (typeof obj !== 'object' || obj === null) return undefined;
  const key = fieldKey(obj, name);
  return key === undefined ? undefined : (obj as Record<string, unknown>)[key];
}

/**
 * The key `obj` holds `name` under, whatever its casing, or undefined; own keys only. An exact match
 * wins, then the first variant, except that a key whose value says nothing (null, empty; `empty` says
 * which) gives way to one that holds a value.
 */
export function fieldKey(obj: object, name: string, empty = saysNothing): string | undefined {
  const values = obj as Record<string, unknown>;
  const exact = Object.hasOwn(obj, name);
  if (exact && !empty(values[name])) return name;
  const wanted = squash(name);
  let found = exact ? name : undefined;
  for (const key of Object.keys(obj)) {
    if (key === name || squash(key) !== wanted) continue;
    if (!empty(values[key])) return key;
    found ??= key;
  }
  return found;
}

/** A value that says nothing of its field: none, null (CONTRACT.md: as missing), or an empty string. */
export const saysNothing = (value: unknown): boolean => value === undefined || value === null || value === '';

/**
 * Gives the event with its spec fields under their canonical names and `type` in lower case. An event
 * that is already canonical (what Segment itself sends) is returned as is, without a copy. Where a field
 * appears twice in different casings, the canonical spelling wins, the first variant if there is none;
 * the other stays under its own key; but a value that says nothing (null, empty) gives way to one that
 * holds a value, wherever it is (see fieldKey). The one value changed: `traits` or `properties` sent as
 * an empty list, PHP's empty map, or null, is given as `{}` (the event as sent stays in `ctx.original`).
 */
export function normalizeEvent(input: Record<string, unknown>): Record<string, unknown> {
  let renames: Array<[string, string]> | undefined;
  // Own keys only (for...in also lists what a polluted Object.prototype holds), the check after the
  // canonical names', which nearly every key of an event is.
  for (const key in input) {
    if (CANONICAL.has(key) || !Object.hasOwn(input, key)) continue;
    const canonical = BY_SQUASHED.get(squash(key));
    if (
      canonical !== undefined &&
      (!Object.hasOwn(input, canonical) || hides(input[canonical], input[key]))
    ) {
      renames ??= [];
      renames.push([key, canonical]);
    }
  }
  if (
    renames === undefined &&
    (typeof input.type !== 'string' || input.type === input.type.toLowerCase()) &&
    !noMap(input.traits) &&
    !noMap(input.properties)
  ) {
    return input;
  }
  const out: Record<string, unknown> = {};
  const renamed = new Map(renames);
  for (const key in input) {
    if (!Object.hasOwn(input, key)) continue;
    const value = input[key];
    const target = renamed.get(key) ?? key;
    const taken = Object.hasOwn(out, target);
    if (taken && target === key && hides(value, out[key])) continue; // a null canonical after its value
    const name = !taken || hides(out[target], value) ? target : key;
    // Assignment to "__proto__" would set the copy's prototype: define it as plain data instead.
    Object.defineProperty(out, name, { value, enumerable: true, writable: true, configurable: true });
  }
  if (typeof out.type === 'string') out.type = out.type.toLowerCase();
  // An empty map as PHP encodes it, or null: handed over as the map it is, one a handler can read the
  // keys of (a list with items is refused later).
  if (noMap(out.traits)) out.traits = {};
  if (noMap(out.properties)) out.properties = {};
  return out;
}

/**
 * The messageId normalizeEvent would give `event` (a non-empty string), read without the copy it may
 * make: the duplicate filter looks up each event of a batch before the event is taken. The same rule
 * (see fieldKey): the canonical key unless it says nothing, then the first variant that holds a value.
 */
export function messageIdOf(event: unknown): string | undefined {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return undefined;
  const key = fieldKey(event, 'messageId', blank);
  const id = key === undefined ? undefined : (event as Record<string, unknown>)[key];
  return typeof id === 'string' && id !== '' ? id : undefined;
}

const emptyList = (value: unknown): boolean => Array.isArray(value) && value.length === 0;
const noMap = (value: unknown): boolean => value === null || emptyList(value);

/**
 * Whether `held`, which says nothing (an empty list neither: PHP's empty map), stands where `other`, a
 * value, could (see fieldKey).
 */
const hides = (held: unknown, other: unknown): boolean => blank(held) && !blank(other);

/** A value that says nothing (saysNothing), or an empty list: what normalizeEvent lets a value stand over. */
export const blank = (value: unknown): boolean => saysNothing(value) || emptyList(value);
