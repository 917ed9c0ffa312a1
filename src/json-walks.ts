// Walks over a body's text and over what JSON.parse made of it, without recursion (a value may nest past
// the stack): how deep it nests, how long it is as JSON, and where a guard's problem lies (json.ts).

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

/** The path of the first `__proto__` or `constructor.prototype` key in a parsed value, if any. */
export function findPoisonedKey(root: unknown): string | undefined {
  return findPath(root, poisonedKey);
}

function poisonedKey(node: unknown): string | undefined {
  if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined;
  if (Object.hasOwn(node, '__proto__')) return '__proto__';
  const ctor = Object.hasOwn(node, 'constructor')
    ? (node as { constructor: unknown }).constructor
    : undefined;
  if (typeof ctor === 'object' && ctor !== null && Object.hasOwn(ctor, 'prototype')) {
    return 'constructor.prototype';
  }
  return undefined;
}

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
