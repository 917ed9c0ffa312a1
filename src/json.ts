// JSON.parse keeps a `"__proto__"` key as an own property, harmless until some later merge
// (Object.assign, a deep-merge helper) turns it into a prototype change. Such keys never pass: a body
// holding `__proto__`, or `constructor` with a `prototype` inside, is refused before anything sees it.
// The keys are looked at as JSON.parse decoded them (`"\u005f_proto__"` is `__proto__` by then), in the
// one walk every parsed body gets for numbers past a double's range: no scan of the text.

export type JsonResult =
  | { readonly ok: true; readonly value: unknown }
  | {
      readonly ok: false;
      readonly code: 'SEG_INVALID_JSON' | 'SEG_FORBIDDEN_KEY' | 'SEG_TOO_DEEP';
      readonly message: string;
    };

/** A JSON object: not null, not an array. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deeper than any real event (a rich one nests 5 or 6 levels), shallow enough for recursive code. */
export const MAX_DEPTH = 64;

/**
 * Parses a request body. Besides invalid JSON, refuses nesting deeper than `maxDepth` (the store's
 * JSON.stringify and partners' own recursive code would overflow the stack: a 500 for the sender's
 * fault) and prototype-poisoning keys.
 */
export function parseJson(text: string, maxDepth = MAX_DEPTH): JsonResult {
  if (nestsDeeper(text, maxDepth)) {
    return { ok: false, code: 'SEG_TOO_DEEP', message: `Request body nests deeper than ${maxDepth} levels` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const reason = err instanceof SyntaxError ? `: ${err.message}` : '';
    return { ok: false, code: 'SEG_INVALID_JSON', message: `Request body is not valid JSON${reason}` };
  }
  const found = suspects(value, objectsInherit());
  if ((found & KEY_NAMED) !== 0) {
    const path = findPoisonedKey(value);
    if (path !== undefined) return poisoned(path);
  }
  return (found & INFINITE) !== 0 ? beyondDouble(value) : { ok: true, value };
}

/**
 * For a value parsed elsewhere (a framework's body parser): the same refusals as `parseJson`, as a
 * message, or `undefined` when the value is fine.
 */
export function checkParsed(root: unknown, maxDepth = MAX_DEPTH): JsonResult | undefined {
  if (parsedNestsDeeper(root, maxDepth)) {
    return { ok: false, code: 'SEG_TOO_DEEP', message: `Request body nests deeper than ${maxDepth} levels` };
  }
  const path = findPoisonedKey(root);
  if (path !== undefined) return poisoned(path);
  // A host's objects may have any prototype: each key is checked for its own.
  return (suspects(root, true) & INFINITE) !== 0 ? beyondDouble(root) : undefined;
}

/**
 * Whether a parsed value opens more than `max` objects/arrays inside one another: walked without
 * recursion, so that a value nested past the stack (which JSON.stringify, recursive, cannot write) is
 * told apart before anything serialises it.
 */
export function parsedNestsDeeper(root: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[root, 0]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number];
    if (typeof node !== 'object' || node === null) continue;
    if (depth >= max) return true;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * The UTF-8 bytes of `JSON.stringify(root)` for a value JSON.parse made, counted without recursion (for
 * one nested past what JSON.stringify can write): exact up to `max`, and any count over `max` once it
 * passes it, where the walk stops.
 */
export function serializedBytes(root: unknown, max: number): number {
  let bytes = 0;
  const stack: unknown[] = [root];
  while (stack.length > 0 && bytes <= max) {
    const node = stack.pop();
    if (typeof node === 'bigint') {
      bytes += String(node).length; // JSON.stringify throws: counted as its digits
    } else if (typeof node !== 'object' || node === null) {
      bytes += Buffer.byteLength(JSON.stringify(node) ?? 'null');
    } else if (Array.isArray(node)) {
      // Brackets and commas, then the elements.
      bytes += 2 + Math.max(node.length - 1, 0);
      for (let i = 0; i < node.length; i++) stack.push(node[i]);
    } else {
      // Braces and commas, each key quoted and its colon, then the values.
      const keys = Object.keys(node);
      bytes += 2 + Math.max(keys.length - 1, 0);
      for (const key of keys) {
        bytes += Buffer.byteLength(JSON.stringify(key)) + 1;
        stack.push((node as Record<string, unknown>)[key]);
      }
    }
  }
  return bytes;
}

function poisoned(path: string): JsonResult {
  return { ok: false, code: 'SEG_FORBIDDEN_KEY', message: `Request body contains a forbidden key: ${path}` };
}

function beyondDouble(value: unknown): JsonResult {
  return {
    ok: false,
    code: 'SEG_INVALID_JSON',
    message: `Request body holds a number beyond the range of a double at ${findInfinity(value) || 'its top level'}`,
  };
}

/** The path of the first `__proto__` or `constructor.prototype` key in a parsed value, if any. */
export function findPoisonedKey(root: unknown): string | undefined {
  return findPath(root, poisonedKey);
}

function poisonedKey(node: unknown): string | undefined {
  if (!isPlainObject(node)) return undefined;
  if (Object.hasOwn(node, '__proto__')) return '__proto__';
  const ctor = Object.hasOwn(node, 'constructor')
    ? (node as { constructor: unknown }).constructor
    : undefined;
  if (typeof ctor === 'object' && ctor !== null && Object.hasOwn(ctor, 'prototype')) {
    return 'constructor.prototype';
  }
  return undefined;
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

/** The path of the first number JSON.parse turned into Infinity (a literal beyond a double's range). */
export function findInfinity(root: unknown): string | undefined {
  return findPath(root, (node) => (typeof node === 'number' && !Number.isFinite(node) ? '' : undefined));
}

/**
 * Walks a parsed value depth first: the path of the first node for which `test` names a problem (the
 * problem's own key under that node, or '' for the node itself), or `undefined`.
 */
function findPath(root: unknown, test: (node: unknown) => string | undefined): string | undefined {
  const stack: Array<[unknown, string]> = [[root, '']];
  while (stack.length > 0) {
    const [node, path] = stack.pop() as [unknown, string];
    const found = test(node);
    if (found !== undefined) return found === '' ? path : join(path, found);
    if (typeof node !== 'object' || node === null) continue;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) stack.push([node[i], `${path}[${i}]`]);
      continue;
    }
    for (const key of Object.keys(node))
      stack.push([(node as Record<string, unknown>)[key], join(path, key)]);
  }
  return undefined;
}

const join = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);

/**
 * Whether the text opens more than `max` objects/arrays inside one another. Counting brackets with the
 * native indexOf settles most bodies (no more brackets in all than the limit); only the rest are
 * walked, skipping brackets inside strings.
 */
export function nestsDeeper(text: string, max: number): boolean {
  let brackets = 0;
  for (let i = text.indexOf('{'); i !== -1 && brackets <= max; i = text.indexOf('{', i + 1)) brackets++;
  for (let i = text.indexOf('['); i !== -1 && brackets <= max; i = text.indexOf('[', i + 1)) brackets++;
  if (brackets <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}
