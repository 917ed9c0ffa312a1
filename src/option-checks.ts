import type { Handlers } from './dispatch.ts';
import { describeValue } from './errors.ts';
import { describeSecret } from './key-spec.ts';
import { type Logger, neverThrowing } from './log.ts';
import { nearest } from './spelling.ts';
import { EVENT_TYPES, type EventType } from './types.ts';

// Checks of the handler's options that are not numbers or paths: its handlers, switches and logger.

/** The handlers: own or inherited methods (a class instance's), each bound to the object given. */
export function checkHandlers(handlers: unknown): Handlers {
  if (typeof handlers !== 'object' || handlers === null || Array.isArray(handlers)) {
    throw new TypeError(
      `options.handlers must be an object of event handlers, got ${describeValue(handlers)}`,
    );
  }
  // A plain object's other keys are misspelt types ('identfy'); a class instance has methods of its own
  // (misspeltMethods says which look like a slip).
  for (const type of plainObject(handlers) ? Object.keys(handlers) : []) {
    if (!EVENT_TYPES.includes(type as EventType)) {
      const near = nearest(type, EVENT_TYPES);
      const hint = near === undefined ? '' : `: did you mean ${near}?`;
      throw new RangeError(
        `options.handlers.${type} is not a Segment event type${hint} (${EVENT_TYPES.join(', ')})`,
      );
    }
  }
  // Its own properties or inherited ones (a class instance's methods), each called on it.
  const found: Partial<Record<EventType, unknown>> = {};
  for (const type of EVENT_TYPES) {
    const handler = (handlers as Record<string, unknown>)[type];
    if (handler === undefined || builtIn(handlers, type) !== undefined) continue;
    if (typeof handler !== 'function') {
      throw new TypeError(`options.handlers.${type} must be a function, got ${describeValue(handler)}`);
    }
    found[type] = handler.bind(handlers);
  }
  return Object.freeze(found) as Handlers;
}

/**
 * What to warn of in a class instance's handlers: each method one slip (a letter wrong, missing, added
 * or swapped with the next, or its case) from a type the instance has no handler for, whose events are
 * then answered 501. A warning, not a refusal: its other methods are its own (save, parse, a stream's).
 */
export function misspeltMethods(handlers: object): string[] {
  if (plainObject(handlers)) return [];
  const taken = (type: EventType) =>
    (handlers as Record<string, unknown>)[type] !== undefined && builtIn(handlers, type) === undefined;
  const inherited = EVENT_TYPES.flatMap((type) => {
    const from = builtIn(handlers, type);
    if (from === undefined) return [];
    return [
      `options.handlers.${type} is inherited from ${from}, not a handler: ${type} events are answered 501`,
    ];
  });
  const slips = methodNames(handlers).flatMap((name) => {
    const type = EVENT_TYPES.find((type) => !taken(type) && oneSlipApart(name, type));
    if (type === undefined) return [];
    return [
      `options.handlers.${name} is not a Segment event type: did you mean ${type}? ${type} events are answered 501`,
    ];
  });
  return [...inherited, ...slips];
}

/**
 * The built-in class (Map, Set, ...) a class instance inherits a type's method from, if it does: a
 * class extending Map has Map's `delete`, which is no handler of deletion requests (answered 200, never
 * honoured). Its own methods, and those of classes written in JavaScript, are its handlers.
 */
function builtIn(handlers: object, type: EventType): string | undefined {
  if (plainObject(handlers) || Object.hasOwn(handlers, type)) return undefined;
  for (let at = Object.getPrototypeOf(handlers); at !== null; at = Object.getPrototypeOf(at)) {
    const method = Object.getOwnPropertyDescriptor(at, type)?.value;
    if (method === undefined) continue;
    const native = typeof method === 'function' && NATIVE_RE.test(Function.prototype.toString.call(method));
    return native ? (at.constructor?.name ?? 'a built-in') : undefined;
  }
  return undefined;
}

// How a function of the engine's own prints: `function delete() { [native code] }`.
const NATIVE_RE = /\{\s*\[native code\]\s*\}$/;

const plainObject = (object: object): boolean => {
  const proto = Object.getPrototypeOf(object);
  return proto === Object.prototype || proto === null;
};

/** Whether `name` is `type` with one slip: a letter wrong, missing, added or swapped, or another case. */
function oneSlipApart(name: string, type: string): boolean {
  const a = name.toLowerCase();
  if (a === type) return name !== type;
  if (Math.abs(a.length - type.length) > 1) return false;
  let i = 0;
  while (a[i] === type[i]) i++;
  if (a.length !== type.length) {
    const [long, short] = a.length > type.length ? [a, type] : [type, a];
    return long.slice(i + 1) === short.slice(i);
  }
  const swapped = a[i] === type[i + 1] && a[i + 1] === type[i] && a.slice(i + 2) === type.slice(i + 2);
  return swapped || a.slice(i + 1) === type.slice(i + 1);
}

/** The names of an object's methods, its own and its classes', up to (not with) Object's. */
function methodNames(object: object): string[] {
  const names: string[] = [];
  for (let at = object; at !== null && at !== Object.prototype; at = Object.getPrototypeOf(at)) {
    for (const name of Object.getOwnPropertyNames(at)) {
      const { value } = Object.getOwnPropertyDescriptor(at, name) ?? {};
      if (name !== 'constructor' && typeof value === 'function') names.push(name);
    }
  }
  return names;
}

/** A switch option: true, false, or absent for its default. */
export function checkSwitch(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') {
    throw new TypeError(`options.${name} must be true or false, got ${describeValue(value)}`);
  }
  return value;
}

/** A logger with the methods the endpoint calls (pino's, or one of the same shape). */
export function checkLogger(log: Logger): Logger {
  const methods = ['error', 'warn', 'info', 'debug'] as const;
  if (typeof log !== 'object' || log === null || methods.some((m) => typeof log[m] !== 'function')) {
    throw new TypeError(
      `options.log must be a logger with error, warn, info and debug methods, got ${describeValue(log)}`,
    );
  }
  return neverThrowing(log);
}

/** A function option, checked; what it was instead is described, never shown (it may be a secret). */
export function checkFunction<T>(name: string, value: T): T {
  if (typeof value !== 'function') {
    throw new TypeError(`options.${name} must be a function, got ${describeSecret(value)}`);
  }
  return value;
}
