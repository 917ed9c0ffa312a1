import { findInfinity, findPoisonedKey, nestsDeeper, parsedNestsDeeper } from './json-walks.ts';

// JSON.parse keeps a `"__proto__"` key as an own property, harmless until some later merge
// (Object.assign, a deep-merge helper) turns it into a prototype change. Such keys never pass: a body
// holding `__proto__`, or `constructor` with a `prototype` inside, is refused before anything sees it.
// The keys are looked at as JSON.parse decoded them (`"\u005f_proto__"` is `__proto__` by then), in the
// one walk every parsed body gets for numbers past a double's range: no scan of the text.

/** Why a body, or one event of a batch, is refused. */
export interface JsonRefusal {
  readonly ok: false;
  readonly code: 'SEG_INVALID_JSON' | 'SEG_FORBIDDEN_KEY' | 'SEG_TOO_DEEP';
  readonly message: string;
}

export type JsonResult =
  | {
      readonly ok: true;
      readonly value: unknown;
      /** A batch's events refused on their own (only when some are). */
      readonly refused?: EventRefusals;
    }
  | JsonRefusal;

/** The events of a batch refused on their own, by their index in it. */
export type EventRefusals = ReadonlyMap<number, JsonRefusal>;

/**
 * Where a body's events are when it is a batch: the elements of a JSON array (the event path), or the
 * array under `"batch"` (Segment's /v1/batch).
 */
export type BatchShape = 'array' | 'member';

/** A JSON object: not null, not an array. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deeper than any real event (a rich one nests 5 or 6 levels), shallow enough for recursive code. */
export const MAX_DEPTH = 64;

/**
 * Parses a request body. Besides invalid JSON, refuses nesting deeper than `maxDepth` (the store's
 * JSON.stringify and partners' own recursive code would overflow the stack: a 500 for the sender's
 * fault) and prototype-poisoning keys. With `batch`, a body of that shape is a batch, whose events are
 * held to these guards one by one (`eachChecked`): the body as a whole, to twice `maxDepth`.
 */
export function parseJson(text: string, maxDepth = MAX_DEPTH, batch?: BatchShape): JsonResult {
  const shape = batch === 'array' && !opensArray(text) ? undefined : batch;
  const limit = shape === undefined ? maxDepth : 2 * maxDepth;
  if (nestsDeeper(text, limit)) return tooDeep('Request body', limit);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const reason = err instanceof SyntaxError ? `: ${err.message}` : '';
    return { ok: false, code: 'SEG_INVALID_JSON', message: `Request body is not valid JSON${reason}` };
  }
  const found = suspects(value, objectsInherit());
  const deep = limit > maxDepth && nestsDeeper(text, maxDepth);
  if (found === 0 && !deep) return { ok: true, value };
  const events = shape === undefined ? undefined : eventsIn(value, shape);
  if (events !== undefined) return eachChecked(value, events, shape === 'member', maxDepth);
  if (deep) return tooDeep('Request body', maxDepth);
  if ((found & KEY_NAMED) !== 0) {
    const path = findPoisonedKey(value);
    if (path !== undefined) return poisoned('Request body', path);
  }
  return (found & INFINITE) !== 0 ? beyondDouble('Request body', value) : { ok: true, value };
}

/**
 * For a value parsed elsewhere (a framework's body parser): the same refusals as `parseJson`, or
 * `undefined` when the value is fine (with `batch`, the same result for a batch as `parseJson`'s).
 */
export function checkParsed(
  root: unknown,
  maxDepth = MAX_DEPTH,
  batch?: BatchShape,
  what = 'Request body',
): JsonResult | undefined {
  const events = batch === undefined ? undefined : eventsIn(root, batch);
  if (events !== undefined) {
    if (parsedNestsDeeper(root, 2 * maxDepth)) return tooDeep(what, 2 * maxDepth);
    return eachChecked(root, events, batch === 'member', maxDepth);
  }
  if (parsedNestsDeeper(root, maxDepth)) return tooDeep(what, maxDepth);
  const path = findPoisonedKey(root);
  if (path !== undefined) return poisoned(what, path);
  // A host's objects may have any prototype: each key is checked for its own.
  return (suspects(root, true) & INFINITE) !== 0 ? beyondDouble(what, root) : undefined;
}

/**
 * A batch's guards, once its walk found something: what lies around its events (a /v1/batch body's
 * context and integrations, which go into each) as a body, then each event on its own. One odd event is
 * refused alone, as it would be sent alone, and its batch-mates are taken: Segment does not retry a 400,
 * and a batch refused whole for one event would lose them all.
 */
function eachChecked(
  root: unknown,
  events: readonly unknown[],
  member: boolean,
  maxDepth: number,
): JsonResult {
  if (member) {
    const { batch: _events, ...around } = root as Record<string, unknown>;
    const refused = checkParsed(around, maxDepth);
    if (refused !== undefined) return refused;
  }
  const refused = new Map<number, JsonRefusal>();
  for (let i = 0; i < events.length; i++) {
    const one = checkParsed(events[i], maxDepth, undefined, `Event #${i}`);
    if (one !== undefined && !one.ok) refused.set(i, one);
  }
  return refused.size === 0 ? { ok: true, value: root } : { ok: true, value: root, refused };
}

/** The events of a body of the batch's `shape`, or `undefined` for a body of another shape. */
function eventsIn(value: unknown, shape: BatchShape): readonly unknown[] | undefined {
  if (shape === 'array') return Array.isArray(value) ? value : undefined;
  const list = isPlainObject(value) && Object.hasOwn(value, 'batch') ? value.batch : undefined;
  return Array.isArray(list) ? list : undefined;
}

/** Whether the first character of `text` past JSON's white space opens an array. */
function opensArray(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return c === 0x5b;
  }
  return false;
}

const tooDeep = (what: string, max: number): JsonRefusal => ({
  ok: false,
  code: 'SEG_TOO_DEEP',
  message: `${what} nests deeper than ${max} levels`,
});

function poisoned(what: string, path: string): JsonRefusal {
  return { ok: false, code: 'SEG_FORBIDDEN_KEY', message: `${what} contains a forbidden key: ${path}` };
}

function beyondDouble(what: string, value: unknown): JsonRefusal {
  return {
    ok: false,
    code: 'SEG_INVALID_JSON',
    message: `${what} holds a number beyond the range of a double at ${findInfinity(value) || 'its top level'}`,
  };
}

/** A key named `__proto__` or `constructor`: whether it poisons is for findPoisonedKey to say. */
const KEY_NAMED = 1;
/**
 * A literal past a double's range, which JSON.parse makes Infinity and JSON.stringify writes as null:
 * what a handler sees and what is stored would differ. Walking the parsed values costs less than any
 * scan of the text that could tell which bodies may hold one (measured in bench/HISTORY.md).
 */
const INFINITE = 2;

/**
 * Whether Object.prototype lists a key to for...in, as JSON.parse's objects then do: a host's own
 * pollution (`Object.prototype.x = {}` elsewhere in its app). Asked once a body: never, in a sound host.
 */
function objectsInherit(): boolean {
  for (const _ in Object.prototype) return true;
  return false;
}

/**
 * What a parsed value holds that needs a closer look (KEY_NAMED, INFINITE): one lean pass, no paths
 * built. Keys an object inherits are passed over when `inherits` (checked a key at a time only then):
 * an inherited object would lead the walk round it for ever.
 */
function suspects(root: unknown, inherits: boolean): number {
  let found = 0;
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node === 'number') {
      if (node === Infinity || node === -Infinity) found |= INFINITE;
    } else if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) stack.push(node[i]);
    } else if (typeof node === 'object' && node !== null) {
      // for...in: no array of values made per object, as Object.values would.
      for (const key in node) {
        if (inherits && !Object.hasOwn(node, key)) continue;
        if (key === '__proto__' || key === 'constructor') found |= KEY_NAMED;
        stack.push((node as Record<string, unknown>)[key]);
      }
    }
  }
  return found;
}

/** Whether `err` is V8's for a call stack exhausted (a RangeError thrown by nothing else's code). */
export const isStackOverflow = (err: unknown): boolean =>
  err instanceof RangeError && err.message === 'Maximum call stack size exceeded';
