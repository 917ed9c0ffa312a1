// The memory of the duplicate filter (idempotency.ts): a fixed number of 128-bit digests, each with an
// expiry, in a ring in insertion order (which is also expiry order: every entry lives as long), found
// through an open-addressing index. Typed arrays only: nothing for the garbage collector to trace, and
// memory fixed at start-up.

const EMPTY = 0;

/**
 * The ring and its index. The index keeps, beside each entry's slot, the first word of its digest: a
 * probe that does not match never reads the ring, so looking up a digest that is not there (a new event,
 * the common case) touches one cache line of the index instead of a ring slot per probe.
 */
export class DigestRing {
  readonly capacity: number;
  /** Four words of digest per slot. */
  readonly #digests: Uint32Array;
  /** The expiry of each slot; 0 marks a slot not in the index. */
  readonly #expires: Float64Array;
  /** Linear probing; per bucket, the slot + 1 of the ring (or EMPTY) and the digest's first word. */
  readonly #index: Int32Array;
  readonly #mask: number;
  #head = 0;
  #size = 0;

  constructor(capacity: number) {
    this.capacity = Math.max(1, capacity);
    this.#digests = new Uint32Array(this.capacity * 4);
    this.#expires = new Float64Array(this.capacity);
    let buckets = 2;
    while (buckets < this.capacity * 2) buckets *= 2; // at most half full: short probes
    this.#index = new Int32Array(buckets * 2);
    this.#mask = buckets - 1;
  }

  /** When `digest` expires (a time in ms), or 0 when the ring does not hold it. */
  expiry(digest: Uint32Array): number {
    const slot = this.#find(digest);
    return slot === -1 ? 0 : (this.#expires[slot] as number);
  }

  /** Entries whose expiry is after `now`. */
  live(now: number): number {
    let live = 0;
    for (let slot = 0; slot < this.capacity; slot++) if ((this.#expires[slot] as number) > now) live++;
    return live;
  }

  /** Holds `digest` until `expires`, in place of an older entry of it; when full, the oldest entry goes. */
  put(digest: Uint32Array, expires: number): void {
    const old = this.#find(digest);
    if (old !== -1) this.#unindex(old);
    const slot = this.#head;
    if (this.#size === this.capacity) {
      if ((this.#expires[slot] as number) !== 0) this.#unindex(slot); // the oldest goes
    } else {
      this.#size++;
    }
    this.#digests.set(digest, slot * 4);
    this.#expires[slot] = expires;
    const index = this.#index;
    const tag = (digest[0] as number) | 0;
    let bucket = tag & this.#mask;
    while (index[bucket * 2] !== EMPTY) bucket = (bucket + 1) & this.#mask;
    index[bucket * 2] = slot + 1;
    index[bucket * 2 + 1] = tag;
    this.#head = (slot + 1) % this.capacity;
  }

  /** The ring slot holding `digest`, or -1. */
  #find(digest: Uint32Array): number {
    const index = this.#index;
    const words = this.#digests;
    const tag = (digest[0] as number) | 0;
    for (let bucket = tag & this.#mask; ; bucket = (bucket + 1) & this.#mask) {
      const entry = index[bucket * 2] as number;
      if (entry === EMPTY) return -1;
      if (index[bucket * 2 + 1] !== tag) continue;
      const at = (entry - 1) * 4;
      if (words[at + 1] === digest[1] && words[at + 2] === digest[2] && words[at + 3] === digest[3]) {
        return entry - 1;
      }
    }
  }

  /** Takes a ring slot out of the index (backward-shift deletion keeps every probe chain unbroken). */
  #unindex(slot: number): void {
    const index = this.#index;
    const mask = this.#mask;
    let bucket = (this.#digests[slot * 4] as number) & mask;
    while (index[bucket * 2] !== slot + 1) bucket = (bucket + 1) & mask;
    let hole = bucket;
    for (let next = (hole + 1) & mask; index[next * 2] !== EMPTY; next = (next + 1) & mask) {
      const home = (index[next * 2 + 1] as number) & mask;
      // Move the entry back into the hole unless its home lies cyclically in (hole, next].
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        index[hole * 2] = index[next * 2] as number;
        index[hole * 2 + 1] = index[next * 2 + 1] as number;
        hole = next;
      }
    }
    index[hole * 2] = EMPTY;
    this.#expires[slot] = 0;
  }
}
