// The events being processed right now (idempotency.ts), as 128-bit digests in an open-addressing set over
// typed arrays. A Map of string keys would do, but each event is added and deleted within milliseconds,
// thousands of times a second, and V8 rebuilds a Map's table as deleted entries fill it: once the Map is
// old, each new table is allocated in the old generation, so a durable endpoint under load made ~30 KB of
// old-space garbage between two young collections and a few MiB of peak memory (bench/HISTORY.md).

/**
 * A set of digests (four words each). It doubles when half full and halves when under an eighth full,
 * down to the size it started with: a burst of events in flight does not keep its memory afterwards.
 */
export class DigestSet {
  readonly #least: number;
  /** Four words of digest per bucket. */
  #words: Uint32Array;
  /** 1 where a bucket holds a digest. */
  #used: Uint8Array;
  #mask: number;
  #size = 0;

  constructor(buckets = 64) {
    let n = 2;
    while (n < buckets) n *= 2;
    this.#least = n;
    this.#words = new Uint32Array(n * 4);
    this.#used = new Uint8Array(n);
    this.#mask = n - 1;
  }

  get size(): number {
    return this.#size;
  }

  /** Buckets held now (17 bytes each). */
  get buckets(): number {
    return this.#used.length;
  }

  has(digest: Uint32Array): boolean {
    return this.#find(digest) !== -1;
  }

  add(digest: Uint32Array): void {
    if (this.#find(digest) !== -1) return;
    // At most half full, so that probes stay short.
    if ((this.#size + 1) * 2 > this.#used.length) this.#resize(this.#used.length * 2);
    this.#place(digest, 0);
    this.#size++;
  }

  delete(digest: Uint32Array): boolean {
    const found = this.#find(digest);
    if (found === -1) return false;
    const words = this.#words;
    const used = this.#used;
    const mask = this.#mask;
    // Backward-shift deletion, as the ring's index does: every probe chain stays unbroken, no tombstones.
    let hole = found;
    for (let next = (hole + 1) & mask; used[next] === 1; next = (next + 1) & mask) {
      const home = (words[next * 4] as number) & mask;
      // Move the entry back into the hole unless its home lies cyclically in (hole, next].
      if (((next - home) & mask) >= ((next - hole) & mask)) {
        words.copyWithin(hole * 4, next * 4, next * 4 + 4);
        hole = next;
      }
    }
    used[hole] = 0;
    this.#size--;
    // Halved as often as it takes (a burst's last deletes may leave it far too big for one halving).
    let n = used.length;
    while (n > this.#least && this.#size * 8 < n) n /= 2;
    if (n !== used.length) this.#resize(n);
    return true;
  }

  /** The bucket holding `digest`, or -1. */
  #find(digest: Uint32Array): number {
    const words = this.#words;
    const used = this.#used;
    const mask = this.#mask;
    for (let bucket = (digest[0] as number) & mask; used[bucket] === 1; bucket = (bucket + 1) & mask) {
      const at = bucket * 4;
      if (
        words[at] === digest[0] &&
        words[at + 1] === digest[1] &&
        words[at + 2] === digest[2] &&
        words[at + 3] === digest[3]
      ) {
        return bucket;
      }
    }
    return -1;
  }

  /** Puts the digest at `from` in `digest` into its first free bucket. */
  #place(digest: Uint32Array, from: number): void {
    const mask = this.#mask;
    let bucket = (digest[from] as number) & mask;
    while (this.#used[bucket] === 1) bucket = (bucket + 1) & mask;
    const words = this.#words;
    for (let i = 0; i < 4; i++) words[bucket * 4 + i] = digest[from + i] as number;
    this.#used[bucket] = 1;
  }

  #resize(n: number): void {
    const words = this.#words;
    const used = this.#used;
    this.#words = new Uint32Array(n * 4);
    this.#used = new Uint8Array(n);
    this.#mask = n - 1;
    for (let bucket = 0; bucket < used.length; bucket++)
      if (used[bucket] === 1) this.#place(words, bucket * 4);
  }
}
