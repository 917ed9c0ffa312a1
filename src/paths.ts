import { describeValue } from './errors.ts';

// The paths a handler serves (its event path, health, liveness, metrics): each a path, each its own.

/**
 * A `.` or `..` segment, plain or percent-encoded: a fetch host's URL never holds one, and browsers,
 * proxies and most HTTP clients resolve them (RFC 3986 §5.2.4) before sending: such a path is not matched.
 */
const DOT_SEGMENT_RE = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)/i;

/** A path option: starting with "/", with no query, fragment or space. `owner`: what it is said as part of. */
export function checkPath(name: string, value: unknown, owner = 'options.'): string {
  if (typeof value !== 'string' || !value.startsWith('/')) {
    throw new TypeError(`${owner}${name} must be a path starting with "/", got ${describeValue(value)}`);
  }
  if (/[?#\s]/.test(value)) {
    throw new TypeError(
      `${owner}${name} must be a path alone, without a query (?), a fragment (#) or spaces, got ${describeValue(value)}`,
    );
  }
  // A request target is ASCII on the wire (`/s%C3%A9gment`): `/ségment` would never be matched.
  if (!/^[\x21-\x7e]*$/.test(value)) {
    throw new TypeError(
      `${owner}${name} must be ASCII (percent-encode the rest), got ${describeValue(value)}`,
    );
  }
  if (DOT_SEGMENT_RE.test(value)) {
    throw new TypeError(`${owner}${name} must not hold . or .. segments, got ${describeValue(value)}`);
  }
  return value;
}

/** A health, live or metrics path that is one of the event path's Tracking API routes would never be reached. */
export function clearOfRoutes(
  paths: Readonly<Record<string, string | undefined>>,
  routes: ReadonlyMap<string, unknown>,
): void {
  for (const [name, value] of Object.entries(paths)) {
    if (value !== undefined && routes.has(value)) {
      throw new RangeError(`options.${name} (${value}) is one of the Tracking API routes under options.path`);
    }
  }
}

/** Each path serves one thing: a RangeError names two options given the same path. */
export function distinctPaths(paths: Readonly<Record<string, string | undefined>>): void {
  const taken = new Map<string, string>();
  for (const [name, value] of Object.entries(paths)) {
    const other = value === undefined ? undefined : taken.get(value);
    if (other !== undefined)
      throw new RangeError(`options.${name} must differ from options.${other} (${value})`);
    if (value !== undefined) taken.set(value, name);
  }
}
