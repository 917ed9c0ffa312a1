import type { Claim } from './idempotency.ts';

// A process's own claims on a shared duplicate filter (Redis), while it holds them. A copy of an event
// that comes to this process while the event is being claimed or processed here waits for its outcome,
// as the in-memory filter's copies do: a duplicate if it succeeds, told to retry if it fails. Asking the
// shared store instead finds the claim pending and answers 503: every batch that holds one event twice
// cost its sender a retry.

interface Waiter {
  readonly resolve: (claim: Claim) => void;
  readonly reject: (err: unknown) => void;
}

interface Held {
  /** How it ended here, once it has: what a copy that comes before `forget` is told at once. */
  outcome: Claim | undefined;
  readonly waiters: Waiter[];
}

/** The events this process is claiming or processing now, by their key in the shared store. */
export class HeldClaims {
  readonly #held = new Map<string, Held>();

  /** A copy's claim: the outcome of the event held here, or `undefined` when this process holds none. */
  wait(id: string): Claim | Promise<Claim> | undefined {
    const held = this.#held.get(id);
    if (held === undefined) return undefined;
    if (held.outcome !== undefined) return held.outcome;
    return new Promise((resolve, reject) => held.waiters.push({ resolve, reject }));
  }

  /** This process begins to claim the event: copies wait from now on. */
  hold(id: string): void {
    this.#held.set(id, { outcome: undefined, waiters: [] });
  }

  /** The event's outcome here: copies waiting, and those that come until `forget`, are told `claim`. */
  settle(id: string, claim: Claim): void {
    const held = this.#held.get(id);
    if (held === undefined || held.outcome !== undefined) return;
    held.outcome = claim;
    for (const waiter of held.waiters.splice(0)) waiter.resolve(claim);
  }

  /** The claim found the event done or busy in the shared store: copies waiting are told the same. */
  end(id: string, claim: Claim): void {
    this.settle(id, claim);
    this.forget(id);
  }

  /** The claim itself failed (the shared store did not answer): copies waiting fail the same way. */
  fail(id: string, err: unknown): void {
    const held = this.#held.get(id);
    this.#held.delete(id);
    for (const waiter of held?.waiters ?? []) waiter.reject(err);
  }

  /** The shared store has the outcome: copies from now on ask it. */
  forget(id: string): void {
    this.#held.delete(id);
  }
}
