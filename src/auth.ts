import { isUtf8 } from 'node:buffer';
import { hash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { decodeBase64 } from './base64.ts';
import { EndpointError } from './errors.ts';
import { ShardedMap } from './sharded-map.ts';
import type { SignatureSecrets } from './signature.ts';
import { atOnce, PIECE, type Steps } from './slices.ts';
import type { EventType } from './types.ts';

export interface BasicCredentials {
  readonly user: string;
  readonly pass: string;
}

// RFC 7617: the scheme is case-insensitive; be lenient about the spaces around the token.
const BASIC_RE = /^basic[ \t]+(\S+)[ \t]*$/i;

/**
 * Reads `Authorization: Basic base64(user:pass)`. Never throws: `undefined` for anything that is not a
 * decodable Basic header. A token without a colon (some senders send `base64(key)`) is all username.
 */
export function parseBasicAuth(header: string | undefined): BasicCredentials | undefined {
  if (header === undefined) return undefined;
  const match = BASIC_RE.exec(header);
  const bytes = match?.[1] === undefined ? undefined : decodeBase64(match[1]);
  // Not UTF-8: decoded leniently, each bad byte would be U+FFFD, and any two such keys one.
  if (bytes === undefined || !isUtf8(bytes)) return undefined;
  const text = bytes.toString('utf8');
  const colon = text.indexOf(':');
  const user = colon === -1 ? text : text.slice(0, colon);
  // RFC 7617 §2: no control characters. (A newline would also let two keys' events share a duplicate
  // filter key, which is the API key, a newline and the messageId.)
  if (hasControl(user)) return undefined;
  return { user, pass: colon === -1 ? '' : text.slice(colon + 1) };
}

/** Whether `text` holds a control character (C0 or DEL). */
export function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/**
 * What an authenticator says of an API key:
 * - `'allow'` or `true`: any event type;
 * - `{ allow: ['track', ...] }`: only these types (another type is a 403); with `signatureSecret`,
 *   events must be signed under it (`X-Signature` or `X-Segment-Signature`);
 * - `'unknown'` or `false`: a 401;
 * - `'forbidden'`: a 403.
 * To answer with a message of your own ("API token expired"), throw `UnauthorizedError` or
 * `ForbiddenError` instead. Anything else is answered 500 (`checkDecision`, auth-decision.ts).
 */
export type AuthDecision =
  | 'allow'
  | 'unknown'
  | 'forbidden'
  | boolean
  | {
      /** Only these event types (another is a 403); all when absent. */
      readonly allow?: readonly EventType[] | undefined;
      /** This key's events must be signed (`X-Signature`, `X-Segment-Signature`) under this secret or these. */
      readonly signatureSecret?: SignatureSecrets | undefined;
      /** Events a second this key may send (its own `rateLimit`). */
      readonly rate?: number | undefined;
    };

export type Authenticate = (apiKey: string) => AuthDecision | Promise<AuthDecision>;

/** An API key, optionally limited to some event types, optionally with its own signing secret. */
export interface ApiKeySpec {
  readonly key: string;
  readonly types?: readonly EventType[] | undefined;
  /**
   * A signature (hex HMAC-SHA1 of the body, `X-Signature` or `X-Segment-Signature`) is required under this
   * secret for this key's events; under any of them when several (up to 4: a rotation's old and new).
   */
  readonly signatureSecret?: SignatureSecrets | undefined;
  /** Events a second this key may send, in bursts of up to as many: its own `rateLimit`. */
  readonly rate?: number | undefined;
}

/**
 * The default authenticator: a fixed set of keys, found by a tag of the candidate that no sender can
 * compute (SHA-256 of the key after a secret drawn per authenticator): the lookup's timing depends on
 * that tag alone, so it says nothing about how much of a key was right or which key it was, and a check
 * costs the same with ten keys or a million. (Each candidate was compared with every key in constant
 * time: ~2 ms with 10,000 keys, a request's worth of CPU a key, and an unknown key, which nothing caches,
 * paid it every time.)
 */
export function keyAuthenticator(keys: Iterable<string | ApiKeySpec>): Authenticate {
  return atOnce(keyAuthenticatorSteps(keys));
}

/** keyAuthenticator as steps (slices.ts): a reload run in slices does not hold the event loop. */
export function* keyAuthenticatorSteps(keys: Iterable<string | ApiKeySpec>): Steps<Authenticate> {
  const secret = randomBytes(32).toString('hex');
  const tag = (key: string): string => hash('sha256', secret + key, 'binary');
  // One map, from a key's tag to its decision, and no copy of the keys kept: a million keys take ~2 s to
  // build here, in slices on a reload (a second map of the keys for their repeats cost ~2 µs a key). In
  // shards picked by the tag's first byte, uniform as SHA-256 is: no one table copied whole as it grows.
  const list = Array.isArray(keys) ? keys : [...keys]; // resolveApiKeys hands over an array of its own
  const decisions = new ShardedMap<AuthDecision>(list.length, firstByte);
  for (let index = 0; index < list.length; index++) {
    if (index % PIECE === PIECE - 1) yield;
    const spec = specOf(list[index] as string | ApiKeySpec);
    const decision = decisionOf(spec);
    const at = tag(spec.key);
    const shard = decisions.shardOf(at);
    const before = shard.get(at);
    if (before === undefined) shard.set(at, decision);
    // A repeat that says otherwise would silently override the first. The same spec twice (two lists
    // merged) says nothing new.
    else if (!sameDecision(before, decision)) {
      const first = list.findIndex((item) => specOf(item).key === spec.key);
      throw new TypeError(`apiKeys[${index}] gives the key of apiKeys[${first}] other types, secret or rate`);
    }
  }
  const authenticate: Authenticate = (apiKey) => decisions.get(tag(apiKey)) ?? 'unknown';
  fixed.add(authenticate);
  return authenticate;
}

const firstByte = (tag: string): number => tag.charCodeAt(0);

const specOf = (item: string | ApiKeySpec): ApiKeySpec => (typeof item === 'string' ? { key: item } : item);

/**
 * What the authenticator answers for a key: `allow`, or its types, secret and rate (frozen). The spec's
 * own fields (apiKeySpec's copy): one a polluted Object.prototype lists would be every key's.
 */
function decisionOf(spec: ApiKeySpec): AuthDecision {
  const own = <K extends keyof ApiKeySpec>(name: K) => (Object.hasOwn(spec, name) ? spec[name] : undefined);
  const [types, signatureSecret, rate] = [own('types'), own('signatureSecret'), own('rate')];
  if (types === undefined && signatureSecret === undefined && rate === undefined) return 'allow';
  return Object.freeze({
    ...(types === undefined ? {} : { allow: Object.freeze([...types]) }),
    ...(signatureSecret === undefined ? {} : { signatureSecret }),
    ...(rate === undefined ? {} : { rate }),
  });
}

/** Whether two specs of one key say the same: the same types (in any order), secret and rate. */
export function sameSpec(a: ApiKeySpec, b: ApiKeySpec): boolean {
  return sameDecision(decisionOf(a), decisionOf(b));
}

function sameDecision(a: AuthDecision, b: AuthDecision): boolean {
  if (typeof a !== 'object' || typeof b !== 'object') return a === b;
  const types = (allow: readonly string[] | undefined) =>
    allow === undefined ? undefined : [...new Set(allow)].sort().join();
  return (
    types(a.allow) === types(b.allow) &&
    secrets(a.signatureSecret) === secrets(b.signatureSecret) &&
    a.rate === b.rate
  );
}

/** Secrets as compared: one secret and a list of it alone are the same, and so is a list in any order. */
const secrets = (given: SignatureSecrets | undefined): string | undefined =>
  given === undefined
    ? undefined
    : JSON.stringify([...new Set(typeof given === 'string' ? [given] : given)].sort());

// The authenticators keyAuthenticator made: a fixed set of keys, so a key's decision never changes.
const fixed = new WeakSet<Authenticate>();

/** Whether `authenticate` decides from a fixed set of keys (its decisions can be kept). */
export function isFixed(authenticate: Authenticate): boolean {
  return fixed.has(authenticate);
}

/**
 * Compares two hex digests of equal length in constant time: every character is visited, differences
 * are OR-ed together, and there is no early exit (the role timingSafeEqual plays for Buffers, without
 * allocating two Buffers a request).
 */
export function sameDigest(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return difference === 0;
}

/** A short, stable, non-reversible label for an API key: safe to write to logs and stores. */
export function keyFingerprint(apiKey: string): string {
  return hash('sha256', apiKey).slice(0, 12);
}

/**
 * The API key of a request, as Segment sends it: the username of Basic auth. Throws the 401 to answer
 * when there is none, or when the header cannot be read unambiguously.
 */
export function requestApiKey(req: IncomingMessage): string {
  // Node keeps the first of repeated Authorization headers; a request that carries two is ambiguous
  // about who sends it, so it is refused rather than read either way.
  if (repeats(req.rawHeaders, 'authorization')) {
    throw new EndpointError('SEG_AUTH_MALFORMED', 'More than one Authorization header');
  }
  const header = req.headers.authorization;
  const credentials = parseBasicAuth(header);
  if (credentials === undefined)
    throw new EndpointError(header === undefined ? 'SEG_AUTH_MISSING' : 'SEG_AUTH_MALFORMED');
  if (credentials.user === '') throw new EndpointError('SEG_AUTH_MISSING');
  return credentials.user;
}

/** Whether a header appears more than once (rawHeaders alternates names and values, as sent). */
export function repeats(rawHeaders: readonly string[], name: string): boolean {
  let seen = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const header = rawHeaders[i] as string;
    if (header.length === name.length && header.toLowerCase() === name) {
      if (seen) return true;
      seen = true;
    }
  }
  return false;
}
