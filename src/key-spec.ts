import { type ApiKeySpec, type Authenticate, hasControl, keyAuthenticatorSteps } from './auth.ts';
import { unpolluted } from './auth-decision.ts';
import { describeValue } from './errors.ts';
import { isSignatureSecrets, MAX_SIGNATURE_SECRETS, type SignatureSecrets } from './signature.ts';
import { atOnce, PIECE, type Steps } from './slices.ts';
import { nearest } from './spelling.ts';
import { EVENT_TYPES, type EventType } from './types.ts';

// An API key as given to the library (`apiKeys`, `setApiKeys`) or read from the command line: checked
// before the authenticator is built, each refusal naming where the key was given and never the key.

/**
 * One API key, checked, as a spec of its own (the caller's object read once): a string is a key for every
 * event type. `where` names it in the error (an index, a flag, a line of a keys file); the key itself is
 * never in the message, since it is a secret.
 */
export function apiKeySpec(item: unknown, where: string): ApiKeySpec {
  const given = (typeof item === 'string' ? { key: item } : item) as Partial<ApiKeySpec> | null;
  if (typeof item === 'object' && item !== null) checkFields(item, where);
  // Each field read once, into a spec of the endpoint's own: the caller's object may change after the
  // check (loadApiKeys builds the authenticator on later turns), and a getter may answer twice.
  const read = <K extends keyof ApiKeySpec>(name: K) =>
    (given === null ? undefined : unpolluted(given, name)) as ApiKeySpec[K];
  const [key, listed, signatureSecret, rate] = [
    read('key'),
    read('types'),
    read('signatureSecret'),
    read('rate'),
  ];
  checkKey(key, where);
  const secrets = checkSecret(`${where}: signatureSecret`, signatureSecret);
  if (rate !== undefined && !(Number.isInteger(rate) && rate >= 0 && rate <= 1_000_000)) {
    throw new RangeError(`${where}: rate must be a whole number of events a second from 0 to 1000000`);
  }
  // Strings only, holes included (`[null]`, `[, 'track']` failed on reading the missing type's name).
  const types = Array.isArray(listed) ? (Array.from(listed) as unknown[]) : listed;
  if (types !== undefined && !(Array.isArray(types) && types.every((type) => typeof type === 'string'))) {
    throw new TypeError(`${where}: types must be a list of event types`);
  }
  for (const type of types ?? []) checkType(type, where);
  const spec: { -readonly [K in keyof ApiKeySpec]: ApiKeySpec[K] } = { key };
  if (types !== undefined) spec.types = types as EventType[];
  if (secrets !== undefined) spec.signatureSecret = secrets;
  if (rate !== undefined) spec.rate = rate;
  return spec;
}

/** An API key itself, checked. */
function checkKey(key: unknown, where: string): asserts key is string {
  // Well-formed: a lone surrogate, hashed as UTF-8, is U+FFFD, and a key holding that would match it.
  if (typeof key !== 'string' || key === '' || key.includes(':') || hasControl(key) || !key.isWellFormed()) {
    throw new TypeError(
      `${where}: an API key must be a non-empty, well-formed string without ":" or a control character`,
    );
  }
}

function checkType(type: string, where: string): void {
  if ((EVENT_TYPES as readonly string[]).includes(type)) return;
  // Named back only when it is a misspelt type: what stands in the types' place may be a secret
  // (a keys file's columns swapped, KEY:PASSWORD out of Basic auth's habit).
  const near = nearest(type, EVENT_TYPES);
  const what = near === undefined ? 'one of the types' : `"${type}"`;
  const hint = near === undefined ? '' : `: did you mean ${near}?`;
  throw new RangeError(`${where}: ${what} is not an event type${hint} (${EVENT_TYPES.join(', ')})`);
}

/** A class whose constructor returns what it is given: its subclass's fields are added to that object. */
class Given {
  constructor(object: object) {
    // biome-ignore lint/correctness/noConstructorReturn: the point: a plain object, its prototype kept
    return object;
  }
}

/**
 * Specs of the endpoint's own making (ownApiKeySpec), checked and frozen: not checked again. Marked by a
 * private field, which no copy or look-alike can have; the spec stays a plain object. (A WeakSet of
 * them held the loop ~0.2 s as it grew past a million, when a SIGHUP's keys joined the current ones.)
 */
class Checked extends Given {
  readonly #checked = true;

  static has(item: unknown): boolean {
    return typeof item === 'object' && item !== null && #checked in item;
  }
}

/**
 * apiKeySpec for a spec the endpoint made itself (the command line's keys): frozen once checked, so that
 * resolveApiKeys takes it as it is. Checked twice, a million keys took ~0.65 s more, at start and at each
 * SIGHUP.
 */
export function ownApiKeySpec(item: string | object, where: string): ApiKeySpec {
  const spec = apiKeySpec(item, where);
  if (spec.types !== undefined) Object.freeze(spec.types);
  return Object.freeze(new Checked(spec)) as ApiKeySpec;
}

const SPEC_FIELDS: readonly string[] = ['key', 'types', 'signatureSecret', 'rate'];

/**
 * A field no key has is refused rather than ignored: a misspelt `types` or `rate` would otherwise give
 * the key every type, or no limit, the opposite of what was written. Named back only when it is close to
 * a field's name (anything else there may be a secret). Inherited ones count (for...in), as they take effect.
 */
function checkFields(spec: object, where: string): void {
  let field: string | undefined;
  for (const name in spec) field ??= SPEC_FIELDS.includes(name) ? undefined : name;
  if (field === undefined) return;
  const near = nearest(field, SPEC_FIELDS);
  const misspelt = `"${field}" is not a field of an API key: did you mean ${near}?`;
  const what = near === undefined ? "a field is not one of an API key's" : misspelt;
  throw new TypeError(`${where}: ${what} (${SPEC_FIELDS.join(', ')})`);
}

/** A secret option, checked: absent, a non-empty string, or a list of 1 to MAX_SIGNATURE_SECRETS of them. */
export function checkSecret(name: string, value: unknown): SignatureSecrets | undefined {
  if (value === undefined) return undefined;
  // A list read once, into a copy that is checked and kept: the caller's may change after the check, and
  // an element may be a getter that answers twice.
  const secrets = Array.isArray(value) ? Object.freeze(Array.from(value)) : value;
  // The value is not echoed: it is a secret.
  if (!isSignatureSecrets(secrets)) {
    throw new TypeError(
      `${name} must be a string that is not blank, or a list of 1 to ${MAX_SIGNATURE_SECRETS} of them (a rotation's old and new)`,
    );
  }
  return secrets;
}

/** A secret that must be given (`setSignatureSecret`): checked as checkSecret checks an option. */
export function requiredSecret(name: string, value: unknown): SignatureSecrets {
  const secrets = checkSecret(name, value);
  if (secrets === undefined)
    throw new TypeError(`${name} must be a string that is not blank, or a list of them`);
  return secrets;
}

/** The `apiKeys` option (or what `setApiKeys` is given), checked: the authenticator of those keys. */
export function resolveApiKeys(keys: unknown): Authenticate {
  return atOnce(resolveApiKeysSteps(keys));
}

/** resolveApiKeys as steps (slices.ts): the keys checked (checkApiKeysSteps), then the authenticator built. */
export function* resolveApiKeysSteps(keys: unknown): Steps<Authenticate> {
  return yield* keyAuthenticatorSteps(yield* checkApiKeysSteps(keys));
}

/**
 * The `apiKeys` option's list copied and each key checked, as steps (slices.ts): a copy of the endpoint's
 * own, each spec read once (a caller may change its objects after the call). A key given as a string
 * stays the string, checked: a list of a million keys held ~30 MB more as one object a key.
 */
export function* checkApiKeysSteps(keys: unknown): Steps<Array<string | ApiKeySpec>> {
  if (
    typeof keys !== 'object' ||
    keys === null ||
    typeof (keys as Iterable<unknown>)[Symbol.iterator] !== 'function'
  ) {
    throw new TypeError(`options.apiKeys must be an array of keys, got ${describeSecret(keys)}`);
  }
  const specs = [...(keys as Iterable<unknown>)];
  for (let i = 0; i < specs.length; i++) {
    if (i % PIECE === PIECE - 1) yield;
    const item = specs[i];
    if (typeof item === 'string') checkKey(item, `options.apiKeys[${i}]`);
    // One the command line checked already is taken as it is (ownApiKeySpec).
    else if (!Checked.has(item)) specs[i] = apiKeySpec(item, `options.apiKeys[${i}]`);
  }
  if (specs.length === 0) throw new RangeError('options.apiKeys must hold at least one key');
  return specs as Array<string | ApiKeySpec>;
}

/** As describeValue, but a string is not shown: where a key belongs, a string given may be one. */
export function describeSecret(value: unknown): string {
  return typeof value === 'string' ? 'a string' : describeValue(value);
}
