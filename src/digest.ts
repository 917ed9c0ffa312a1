import { randomBytes } from 'node:crypto';

// Keyed digests of strings in JS: two runs of cyrb53's mixing (64 bits of state each) under seeds drawn
// at start-up, so that nobody outside the process can predict a digest or craft two strings that share
// one. Cheaper than SHA-256 through crypto.hash, with no call into C++ (bench/HISTORY.md). Used to find
// an entry again (the duplicate filter, the credentials already accepted), never to authenticate.
const SEEDS = new Uint32Array(randomBytes(8).buffer);

/**
 * A keyed 128-bit digest of `key`, written as four words into `out` (no allocation). With `then`, the
 * digest of `${key}\n${then}`, without building that string.
 */
export function digest128(key: string, out: Uint32Array, then?: string): Uint32Array {
  mix(key, SEEDS[0] as number, out, 0, then);
  mix(key, SEEDS[1] as number, out, 2, then);
  return out;
}

const scratch = new Uint32Array(2);

/** A keyed 53-bit digest of `key`, as a number: a Map key that says nothing about the string. */
export function digest53(key: string): number {
  mix(key, SEEDS[0] as number, scratch, 0);
  return ((scratch[1] as number) & 0x1fffff) * 0x100000000 + (scratch[0] as number);
}

function mix(key: string, seed: number, out: Uint32Array, at: number, then?: string): void {
  let h1 = 0xdeadbeef ^ seed;
  let h2 = 0x41c6ce57 ^ seed;
  for (let i = 0; i < key.length; i++) {
    const ch = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  if (then !== undefined) {
    h1 = Math.imul(h1 ^ 0x0a, 2654435761); // '\n'
    h2 = Math.imul(h2 ^ 0x0a, 1597334677);
    for (let i = 0; i < then.length; i++) {
      const ch = then.charCodeAt(i);
      h1 = Math.imul(h1 ^ ch, 2654435761);
      h2 = Math.imul(h2 ^ ch, 1597334677);
    }
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  out[at] = h1 >>> 0;
  out[at + 1] = h2 >>> 0;
}
