import type { Handlers } from './dispatch.ts';
import { describeValue } from './errors.ts';
import { type Logger, neverThrows } from './log.ts';
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
  // A plain object's other keys are misspelt types ('identfy'). A class instance has fields and methods
  // of its own: a method is taken for a misspelt type only when it is near one it has no handler for.
  const proto = Object.getPrototypeOf(handlers);
  const plain = proto === Object.prototype || proto === null;
  for (const name of plain ? Object.keys(handlers) : methodNames(handlers)) {
    if (EVENT_TYPES.includes(name as EventType)) continue;
    const near = nearest(name, EVENT_TYPES);
    if (!plain && (near === undefined || (handlers as Record<string, unknown>)[near] !== undefined)) continue;
    const hint = near === undefined ? '' : `: did you mean ${near}?`;
    throw new RangeError(
      `options.handlers.${name} is not a Segment event type${hint} (${EVENT_TYPES.join(', ')})`,
    );
  }
  // Its own properties or inherited ones (a class instance's methods), each called on it.
  const found: Partial<Record<EventType, unknown>> = {};
  for (const type of EVENT_TYPES) {
    const handler = (handlers as Record<string, unknown>)[type];
    if (handler === undefined) continue;
    if (typeof handler !== 'function') {
      throw new TypeError(`options.handlers.${type} must be a function, got ${describeValue(handler)}`);
    }
    found[type] = handler.bind(handlers);
  }
  return Object.freeze(found) as Handlers;
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
  return neverThrows(log) ? log : neverThrowing(log);
}

/**
 * The logger as the endpoint calls it: a line the host's logger cannot write (a value it cannot
 * serialise, a stream that failed) is dropped rather than thrown into the request the line was about.
 */
function neverThrowing(log: Logger): Logger {
  const guarded =
    (method: keyof Logger) =>
    (...args: [obj: object, msg?: string]): void => {
      try {
        log[method](...args);
      } catch {}
    };
  return { error: guarded('error'), warn: guarded('warn'), info: guarded('info'), debug: guarded('debug') };
}
