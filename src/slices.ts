// Long work that must not hold the event loop while the endpoint serves (the keys of a keys file of a
// million lines, reloaded on SIGHUP): written once as a generator that yields between pieces, then run
// at once (at start-up, or where the caller asked for it synchronously) or a slice at a time, the
// requests that came meanwhile answered between slices.

/** Work that yields between pieces and returns its result. */
export type Steps<T> = Generator<undefined, T, undefined>;

/** How many items a loop of such work handles between yields: each yield costs a call and a clock read. */
export const PIECE = 512;
// A slice at most this long (plus a piece): what a request arriving meanwhile may wait. Short, because
// Node's libuv accepts one connection a turn of the loop: at 5 ms, a reload of 500,000 keys took ~150 new
// connections a second, and a TLS handshake queued behind the others waited 0.5-0.9 s (bench/HISTORY.md).
const SLICE_MS = 1;

/** Runs `steps` to the end now. */
export function atOnce<T>(steps: Steps<T>): T {
  for (;;) {
    const step = steps.next();
    if (step.done) return step.value;
  }
}

/** Runs `steps` about `sliceMs` at a time, with a turn of the event loop between slices. */
export async function inSlices<T>(steps: Steps<T>, sliceMs = SLICE_MS): Promise<T> {
  for (;;) {
    const done = slice(steps, sliceMs);
    if (done !== undefined) return done.value;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Runs `steps` for about `sliceMs`: their result if they ended, else undefined (more is left). */
export function slice<T>(steps: Steps<T>, sliceMs = SLICE_MS): { readonly value: T } | undefined {
  for (const until = performance.now() + sliceMs; ; ) {
    const step = steps.next();
    if (step.done) return step;
    if (performance.now() >= until) return undefined;
  }
}
