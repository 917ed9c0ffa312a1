import { createHash } from 'node:crypto';
import { describeValue } from './errors.ts';

// Where the shared duplicate filter (idempotency-redis.ts) keeps an event in Redis, and the scripts that
// act on a claim there (ARGV[1] is the claimant's token).

const KEY_PREFIX = 'segment-endpoint:dedup:'; // then a SHA-256 of the event's key

/**
 * The key an event is remembered under: a digest, so that no API key is readable in Redis. A string
 * with a lone surrogate (valid JSON: `"\ud800"`) is digested as UTF-16 after a 0xff byte, which no
 * UTF-8 holds: as UTF-8 each lone surrogate would become U+FFFD, and different messageIds one event.
 */
export function redisKey(key: string, prefix = KEY_PREFIX): string {
  const hash = createHash('sha256');
  if (key.isWellFormed()) hash.update(key);
  else hash.update(ILL_FORMED).update(Buffer.from(key, 'utf16le'));
  return prefix + hash.digest('hex');
}

/**
 * Where a filter's events go: under `namespace` when given (`segment-endpoint:dedup:<namespace>:`), so
 * that endpoints sharing one Redis each run an event Segment delivers to every one of them.
 */
export function keyPrefix(namespace: unknown): string {
  if (namespace === undefined) return KEY_PREFIX;
  if (typeof namespace !== 'string') {
    throw new TypeError(`options.namespace must be a string, got ${describeValue(namespace)}`);
  }
  if (namespace.length < 1 || namespace.length > MAX_NAMESPACE) {
    throw new RangeError(
      `options.namespace must be 1 to ${MAX_NAMESPACE} characters, got ${namespace.length}`,
    );
  }
  return `${KEY_PREFIX}${namespace}:`;
}

const MAX_NAMESPACE = 100;

const ILL_FORMED = Buffer.from([0xff]);

/** Deletes the key only while it holds the caller's claim: not a claim made since by another process. */
export const RELEASE =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
/** Gives the caller's claim, while the key still holds it, a new expiry of ARGV[2] ms. */
export const RENEW =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";
