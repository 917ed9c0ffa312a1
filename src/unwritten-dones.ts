// Events completed by this process whose `done` the shared duplicate filter (idempotency-redis.ts) could
// not write: Redis refused it (a dropped connection, out of memory, read-only). Each is kept to be written
// again: by a copy's claim here, which it answers as a duplicate; once Redis takes writes again; and as
// the store closes. Until then a copy that reaches another process after the claim left pending expires
// is processed again.

/** Kept at most (~2 MiB): past it the oldest is forgotten. */
const MAX_KEPT = 10_000;

/** Writes `done` for `id` until `until` (ms since the epoch): false if its window has ended. */
export type WriteDone = (id: string, until: number) => Promise<boolean>;

export class UnwrittenDones {
  /** When each kept event's window ends, by key, oldest first. */
  readonly #until = new Map<string, number>();
  readonly #write: WriteDone;

  constructor(write: WriteDone) {
    this.#write = write;
  }

  /** How many are kept. */
  get size(): number {
    return this.#until.size;
  }

  /** `id`'s `done`, for a window that ends at `until`, was refused. */
  keep(id: string, until: number): void {
    if (this.#until.size >= MAX_KEPT && !this.#until.has(id)) {
      this.#until.delete(this.#until.keys().next().value as string);
    }
    this.#until.set(id, until);
  }

  /** Writes `id`'s `done` if it is kept: whether it was written. Rejects (and keeps it) if Redis refuses. */
  async writeKept(id: string): Promise<boolean> {
    const until = this.#until.get(id);
    if (until === undefined) return false;
    const written = await this.#write(id, until);
    this.#until.delete(id);
    return written;
  }

  /** Writes every kept `done`, oldest first, until Redis refuses one (rejects with its refusal). */
  async writeAll(): Promise<void> {
    for (const [id, until] of [...this.#until]) {
      await this.#write(id, until);
      this.#until.delete(id);
    }
  }
}

/** What a store closed with `done`s Redis still refuses says of them. */
export const UNWRITTEN_AT_CLOSE =
  "closed with 'done's Redis refused to write: once those events' claims expire, copies of them that reach another process are processed again";
