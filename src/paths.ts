import { describeValue } from './errors.ts';

// The paths a handler serves (its event path, health, liveness, metrics): each a path, each its own.

/** A path option: starting with "/", with no query, fragment or space. */
export function checkPath(name: string, value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('/') || /[?#\s]/.test(value)) {
    throw new TypeError(`options.${name} must be a path starting with "/", got ${describeValue(value)}`);
  }
  return value;
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
