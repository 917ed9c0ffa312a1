import { describeValue, EndpointError } from './errors.ts';
import { isPromise } from './promise.ts';
import type { Settings } from './settings.ts';

// `settingsSchema`: the customer's custom settings checked against the destination's own schema, once
// per distinct X-Segment-Settings header, so that a handler reads `ctx.settings` typed and already
// checked, and a customer whose settings are wrong hears why (400) instead of a handler failing on them.

/**
 * A compiled schema of the destination's settings: TypeBox's `TypeCompiler.Compile(schema)`, or anything
 * with the same two methods. Nothing of a schema library is loaded unless a schema is given.
 */
export interface SettingsSchema<S> {
  /** Whether `value` matches: true or false, at once (not a promise). */
  Check(value: unknown): value is S;
  /** Why a value does not match: each error's place (a JSON pointer, `''` for the whole) and message. */
  Errors(value: unknown): Iterable<{ readonly path: string; readonly message: string }>;
}

/** The option, checked: absent, or an object with `Check` and `Errors`. */
export function checkSettingsSchema<S>(value: unknown): SettingsSchema<S> | undefined {
  if (value === undefined) return undefined;
  const schema = value as Partial<SettingsSchema<unknown>> | null;
  if (typeof schema?.Check !== 'function' || typeof schema.Errors !== 'function') {
    throw new TypeError(
      `options.settingsSchema must be a compiled schema with Check and Errors (TypeCompiler.Compile(Type.Object(...))), got ${describeValue(value)}`,
    );
  }
  return schema as SettingsSchema<S>;
}

/**
 * Each decoded settings object judged once: SettingsCache hands out one object per distinct header (and
 * one for an absent header), so the judgement is kept beside it, and forgotten with it.
 */
export class SettingsGuard {
  readonly #schema: SettingsSchema<unknown>;
  readonly #judged = new WeakMap<Settings, string | null>();

  constructor(schema: SettingsSchema<unknown>) {
    this.#schema = schema;
  }

  /** Throws the 400 to answer when `settings` do not match the schema. */
  admit(settings: Settings): void {
    let problem = this.#judged.get(settings);
    if (problem === undefined) {
      problem = this.#matches(settings) ? null : this.#problem(settings);
      this.#judged.set(settings, problem);
    }
    if (problem !== null) throw new EndpointError('SEG_SETTINGS_INVALID', problem);
  }

  /**
   * Check's answer, which must be a boolean: a promise (an async validator's) is truthy, and would admit
   * every customer's settings unchecked; one that rejects (ajv's, for invalid data) would end the process
   * unhandled. A partner's bug, so thrown as ours (500, logged, retried by Segment) rather than a 400 that
   * blames the customer and loses the event. Only its type is said: it could hold the settings.
   */
  #matches(settings: Settings): boolean {
    const matched: unknown = this.#schema.Check(settings);
    if (typeof matched === 'boolean') return matched;
    let got: string = typeof matched;
    if (isPromise(matched)) {
      matched.then(undefined, ignore);
      got = 'a promise';
    }
    throw new TypeError(`options.settingsSchema.Check must answer true or false, got ${got}`);
  }

  /**
   * The first error, by its place and message: never the value found there, which may be a credential
   * of the customer's (TypeBox's messages name what was expected, not what was given).
   */
  #problem(settings: Settings): string {
    let first: { readonly path?: unknown; readonly message?: unknown } | undefined;
    for (const error of this.#schema.Errors(settings)) {
      first = error;
      break;
    }
    // What an adapter of its own yields may lack either: said without it rather than as "undefined".
    const text = (value: unknown) => (typeof value === 'string' ? value : '');
    const [path, message] = [text(first?.path), text(first?.message)];
    const said = message === '' ? '' : `: ${path === '' ? '' : `${path}: `}${message}`;
    return `X-Segment-Settings: the settings do not match this destination's${said}`.slice(0, MAX_MESSAGE);
  }
}

const ignore = () => {};
const MAX_MESSAGE = 300; // characters: a path made of the customer's own keys could be long
