import type { HandlerOptions } from './options.ts';
import { nearest } from './spelling.ts';

// The names of the options, checked apart from their values: a name that is no option is refused.

/** Every option of `createHandler`, by name (the compiler holds it to HandlerOptions). */
export const HANDLER_OPTION_NAMES: readonly string[] = Object.keys({
  handlers: true,
  apiKeys: true,
  authenticate: true,
  settingsSchema: true,
  path: true,
  trackingApi: true,
  healthPath: true,
  livePath: true,
  rateLimit: true,
  cpuShare: true,
  ready: true,
  metricsPath: true,
  accessLog: true,
  realm: true,
  maxBodyBytes: true,
  bodyTimeoutMs: true,
  handlerTimeoutMs: true,
  signatureSecret: true,
  signatureLegacyBatch: true,
  maxDepth: true,
  maxInFlight: true,
  idempotency: true,
  log: true,
} satisfies Record<keyof HandlerOptions, true>);

/**
 * Refuses a name that is none of `names`: TypeScript refuses a misspelt option in an object literal, but
 * JavaScript, or options built elsewhere, would have it ignored and its default apply. Inherited names
 * count as own ones do (an inherited option takes effect); `elsewhere`: where a name given here belongs;
 * `owner`: what the names are said as part of (`options.idempotency.`).
 */
export function checkOptionNames(
  input: unknown,
  names: readonly string[],
  elsewhere: Readonly<Record<string, string>> = {},
  owner = 'options.',
): void {
  if (typeof input !== 'object' || input === null) return; // refused when resolved
  for (const name in input) {
    if (names.includes(name)) continue;
    const near = nearest(name, names);
    const hint = Object.hasOwn(elsewhere, name)
      ? `: ${elsewhere[name]}`
      : near === undefined
        ? ` (the options: ${names.join(', ')})`
        : `: did you mean ${near}?`;
    throw new TypeError(`${owner}${name} is not an option${hint}`);
  }
}

/**
 * The options given, inherited ones too (for...in, as `checkOptionNames` reads them and createHandler
 * takes them), as a plain object, less the names in `leave`: an adapter's copy to change or add to.
 */
export function optionsCopy<T extends object>(options: T, leave: ReadonlySet<string> = new Set()): T {
  const copy: Record<string, unknown> = {};
  for (const name in options) if (!leave.has(name)) copy[name] = options[name];
  return copy as T;
}
