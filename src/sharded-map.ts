// A V8 Map doubles its table as it grows, copying every entry in one go: built in slices (slices.ts)
// or not, a map of a keys file's million keys held the event loop ~0.11 s at the copy past 524,288
// entries, and of two million ~0.66 s past 2,097,152 (bench/HISTORY.md, "Loading a keys file"). Split
// into shards of at most ~16,000 entries each, no copy takes more than a few milliseconds.

const SHARD_ENTRIES = 16_384;
const MAX_SHARDS = 256;

/**
 * A string-keyed map in up to 256 shards of ~16,000 entries for the `expected` count it is made for (past
 * 4,194,304 entries, or more than expected, its shards grow larger, as a Map's table does). `pick` spreads
 * keys over the shards: any number, of which the low bits are used; it must be uniform over the keys, or
 * the shards are not.
 */
export class ShardedMap<V> {
  readonly #shards: Map<string, V>[];
  readonly #mask: number;
  readonly #pick: (key: string) => number;

  constructor(expected: number, pick: (key: string) => number) {
    let count = 1;
    while (count < MAX_SHARDS && count * SHARD_ENTRIES < expected) count *= 2;
    this.#shards = Array.from({ length: count }, () => new Map<string, V>());
    this.#mask = count - 1;
    this.#pick = pick;
  }

  get(key: string): V | undefined {
    return this.shardOf(key).get(key);
  }

  set(key: string, value: V): void {
    this.shardOf(key).set(key, value);
  }

  /** The Map that holds `key`, or would: a look-up and an insertion of one key pick its shard once. */
  shardOf(key: string): Map<string, V> {
    // One shard: nothing to pick (a handler with a few keys pays no digest).
    const at = this.#mask === 0 ? 0 : this.#pick(key) & this.#mask;
    return this.#shards[at] as Map<string, V>;
  }
}
