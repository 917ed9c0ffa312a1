// Waiting without sleeps: for text to appear, for a condition to hold, for n calls, for a gate to open,
// for a promise that must settle.

/** Waits (up to `ms`) until `text()` matches `re`; the match, or an assertion failure showing the text. */
export async function waitFor(text: () => string, re: RegExp, ms = 10_000): Promise<RegExpExecArray> {
  const found: { match?: RegExpExecArray | undefined } = {};
  const matches = () => {
    found.match = re.exec(text()) ?? undefined;
    return found.match !== undefined;
  };
  await waitUntil(matches, () => `${re} in:\n${text()}`, ms);
  return found.match as RegExpExecArray;
}

/**
 * Waits until `check()` holds, looking every 20 ms. `ms` only bounds a test that would otherwise hang:
 * past it, an error naming what was awaited.
 */
export async function waitUntil(check: () => boolean, what: () => string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `reached` resolves at the `n`th `hit()`: "once n handlers have started", without a sleep. */
export function countdown(n: number): { hit(): void; readonly reached: Promise<void> } {
  let left = n;
  let done = () => {};
  const reached = new Promise<void>((resolve) => {
    done = resolve;
  });
  return {
    hit() {
      if (--left === 0) done();
    },
    reached,
  };
}

/** A promise and the function that settles it: a handler held until the test lets it go. */
export function gate(): { readonly opened: Promise<void>; open(): void } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/**
 * `promise`, or a rejection saying `what` did not happen within `ms`: for a promise that hung before its
 * fix, the bound makes the test fail rather than hang.
 */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

/** Polls the asynchronous `check` every 20 ms until it holds; past `ms`, an error naming `what`. */
export async function eventually(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
