import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, test } from 'node:test';
import { type AuthDecision, type Authenticate, keyAuthenticator } from '../src/auth.ts';
import { type Credentials, CredentialsCache } from '../src/credentials.ts';
import { ForbiddenError, UnauthorizedError } from '../src/errors.ts';
import { isPromise } from '../src/promise.ts';
import { basic } from './helpers.ts';

/** A request as the cache reads it: each value is one Authorization header, in the order sent. */
function request(...authorization: string[]): IncomingMessage {
  // Node keeps the first of repeated Authorization headers in `headers`; `rawHeaders` has them all.
  // Names in either case: a repeat is found whatever the case it is sent in.
  const rawHeaders = authorization.flatMap((value, i) => [i % 2 ? 'authorization' : 'Authorization', value]);
  return { headers: { authorization: authorization[0] }, rawHeaders } as unknown as IncomingMessage;
}

/** The credentials of a request, answered without a promise (a synchronous authenticator). */
function now(cache: CredentialsCache, req: IncomingMessage): Credentials {
  const credentials = cache.of(req);
  assert.ok(!isPromise(credentials), 'answered synchronously');
  return { apiKey: credentials.apiKey, decision: credentials.decision };
}

/** The credentials of a request, awaited: what the pipeline acts on. */
async function later(cache: CredentialsCache, req: IncomingMessage): Promise<Credentials> {
  const credentials = await cache.of(req);
  return { apiKey: credentials.apiKey, decision: credentials.decision };
}

/** The refusal's code, whether the cache throws or its promise rejects. */
async function refused(cache: CredentialsCache, req: IncomingMessage, code: string): Promise<void> {
  await assert.rejects(async () => cache.of(req), { code });
}

/** A custom authenticator over a set of keys that can change, counting its calls. */
function revocable(...keys: string[]): { authenticate: Authenticate; keys: Set<string>; calls: string[] } {
  const allowed = new Set(keys);
  const calls: string[] = [];
  const authenticate: Authenticate = (apiKey) => {
    calls.push(apiKey);
    return allowed.has(apiKey) ? 'allow' : 'unknown';
  };
  return { authenticate, keys: allowed, calls };
}

describe('CredentialsCache with the key authenticator', () => {
  test('a valid key is accepted, then accepted again from the cache with the same result', () => {
    const cache = new CredentialsCache(keyAuthenticator(['k1', 'k2']), 4_000);
    const first = now(cache, request(basic('k1')));
    assert.deepEqual(first, { apiKey: 'k1', decision: 'allow' });
    for (let i = 0; i < 3; i++) assert.deepEqual(now(cache, request(basic('k1'))), first);
    assert.deepEqual(now(cache, request(basic('k2'))), { apiKey: 'k2', decision: 'allow' });
  });

  test('a wrong key is SEG_AUTH_UNKNOWN the first time and the second', () => {
    const cache = new CredentialsCache(keyAuthenticator(['k1']), 4_000);
    now(cache, request(basic('k1')));
    for (let i = 0; i < 2; i++) {
      assert.throws(() => cache.of(request(basic('nope'))), { code: 'SEG_AUTH_UNKNOWN' });
    }
  });

  test('a header one character away from a cached one is read as itself, and refused', () => {
    const cache = new CredentialsCache(keyAuthenticator(['k1']), 4_000);
    const header = basic('k1');
    assert.equal(header, 'Basic azE6'); // base64('k1:')
    now(cache, request(header));
    // 'azE7' is base64('k1;'): a key nobody has.
    assert.throws(() => cache.of(request(`${header.slice(0, -1)}7`)), { code: 'SEG_AUTH_UNKNOWN' });
    assert.throws(() => cache.of(request(`${header.slice(0, -1)}!`)), { code: 'SEG_AUTH_MALFORMED' });
    assert.throws(() => cache.of(request(`${header} x`)), { code: 'SEG_AUTH_MALFORMED' });
    assert.deepEqual(now(cache, request(header)), { apiKey: 'k1', decision: 'allow' });
  });

  test('a repeated Authorization header is refused even when its first value was cached', () => {
    const cache = new CredentialsCache(keyAuthenticator(['k1', 'k2']), 4_000);
    now(cache, request(basic('k1')));
    assert.throws(() => cache.of(request(basic('k1'), basic('k1'))), { code: 'SEG_AUTH_MALFORMED' });
    assert.throws(() => cache.of(request(basic('k1'), basic('k2'))), { code: 'SEG_AUTH_MALFORMED' });
    assert.throws(() => cache.of(request(basic('k1'), basic('k1'), basic('k1'))), {
      code: 'SEG_AUTH_MALFORMED',
    });
    assert.deepEqual(now(cache, request(basic('k1'))), { apiKey: 'k1', decision: 'allow' });
  });

  test('no header is SEG_AUTH_MISSING, an empty key too; another scheme is SEG_AUTH_MALFORMED', () => {
    const cache = new CredentialsCache(keyAuthenticator(['k1']), 4_000);
    for (let i = 0; i < 2; i++) {
      assert.throws(() => cache.of(request()), { code: 'SEG_AUTH_MISSING' });
      assert.throws(() => cache.of(request(basic(''))), { code: 'SEG_AUTH_MISSING' });
      assert.throws(() => cache.of(request('Bearer azE6')), { code: 'SEG_AUTH_MALFORMED' });
    }
  });

  test('a key limited to some types keeps its decision object from the cache', () => {
    const cache = new CredentialsCache(
      keyAuthenticator([{ key: 'limited', types: ['track'] }, 'full']),
      4_000,
    );
    const first = now(cache, request(basic('limited')));
    assert.deepEqual(first.decision, { allow: ['track'] });
    const second = now(cache, request(basic('limited')));
    assert.equal(second.decision, first.decision);
    assert.ok(Object.isFrozen(second.decision));
    assert.equal(now(cache, request(basic('full'))).decision, 'allow');
  });

  test('base64(key) without a colon and base64(key:) are both the key, cached or not', () => {
    const cache = new CredentialsCache(keyAuthenticator(['k1']), 4_000);
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(now(cache, request(basic('k1', false))), { apiKey: 'k1', decision: 'allow' });
      assert.deepEqual(now(cache, request(basic('k1'))), { apiKey: 'k1', decision: 'allow' });
    }
  });

  test('more than 1024 accepted headers: each still gives its own key, wrong keys stay refused', () => {
    const cache = new CredentialsCache(keyAuthenticator(['k1', 'k2']), 4_000);
    // Distinct headers for one key: the password differs (Segment leaves it empty; anyone may not).
    const header = (i: number): string => basic(`k1:${i}`);
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 1100; i++) assert.equal(now(cache, request(header(i))).apiKey, 'k1');
      assert.equal(now(cache, request(basic('k2'))).apiKey, 'k2');
      assert.throws(() => cache.of(request(basic('k3'))), { code: 'SEG_AUTH_UNKNOWN' });
    }
  });

  test('long accepted headers are kept up to a bound on their size, not their number alone', () => {
    // A host that takes 1 MiB headers let one customer's key, sent with 1,000 distinct ~700 KB
    // passwords, keep ~1 GB of them: the cache counted headers, not their bytes.
    // 100 passwords of ~70 KB, ~9 Mi characters of headers: under the count's bound, over the size's.
    const cache = new CredentialsCache(keyAuthenticator(['k1']), 4_000);
    const padding = 'p'.repeat(70_000);
    for (let i = 0; i < 100; i++) assert.equal(now(cache, request(basic(`k1:${i}${padding}`))).apiKey, 'k1');
    assert.ok(cache.keptChars <= 4 * 1024 * 1024, `${cache.keptChars} characters of headers kept`);
    const short = request(basic('k1'));
    assert.equal(now(cache, short).apiKey, 'k1');
    assert.ok(cache.keptChars > 0, 'a header of a usual size is kept');
  });
});

describe('CredentialsCache with a custom authenticator', () => {
  test('a header answered for many requests at once is counted once against the bound', async () => {
    // Each request that came while the authenticator was still answering added the header's length
    // again: 100 at once counted one header 100 times, and the cache was emptied that much sooner.
    const cache = new CredentialsCache(async (key: string) => (key === 'k1' ? true : 'unknown'), 4_000);
    const header = basic('k1');
    await Promise.all(Array.from({ length: 100 }, () => cache.of(request(header))));
    assert.equal(cache.keptChars, header.length);
  });

  test('it is asked on every request: a revoked key is refused at once, a restored one accepted', () => {
    const { authenticate, keys, calls } = revocable('k1');
    const cache = new CredentialsCache(authenticate, 4_000);
    assert.deepEqual(now(cache, request(basic('k1'))), { apiKey: 'k1', decision: 'allow' });
    assert.deepEqual(now(cache, request(basic('k1'))), { apiKey: 'k1', decision: 'allow' });
    keys.delete('k1');
    assert.throws(() => cache.of(request(basic('k1'))), { code: 'SEG_AUTH_UNKNOWN' });
    keys.add('k1');
    assert.deepEqual(now(cache, request(basic('k1'))), { apiKey: 'k1', decision: 'allow' });
    assert.deepEqual(calls, ['k1', 'k1', 'k1', 'k1']);
  });

  test('each answer maps to its result: true, an object, false, forbidden', () => {
    const decisions = new Map<string, AuthDecision>([
      ['yes', true],
      ['typed', { allow: ['identify'] }],
      ['no', false],
      ['banned', 'forbidden'],
    ]);
    const cache = new CredentialsCache((apiKey) => decisions.get(apiKey) ?? 'unknown', 4_000);
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(now(cache, request(basic('yes'))), { apiKey: 'yes', decision: true });
      assert.deepEqual(now(cache, request(basic('typed'))).decision, { allow: ['identify'] });
      assert.throws(() => cache.of(request(basic('no'))), { code: 'SEG_AUTH_UNKNOWN' });
      assert.throws(() => cache.of(request(basic('banned'))), { code: 'SEG_FORBIDDEN' });
    }
  });

  test('refusals of the header itself come before the authenticator, cached or not', () => {
    const { authenticate, calls } = revocable('k1');
    const cache = new CredentialsCache(authenticate, 4_000);
    now(cache, request(basic('k1')));
    assert.throws(() => cache.of(request()), { code: 'SEG_AUTH_MISSING' });
    assert.throws(() => cache.of(request('Basic !!')), { code: 'SEG_AUTH_MALFORMED' });
    assert.throws(() => cache.of(request(basic('k1'), basic('k1'))), { code: 'SEG_AUTH_MALFORMED' });
    assert.deepEqual(calls, ['k1']);
  });

  test('an async authenticator: accepted through a promise, again from the cache, then revoked', async () => {
    const allowed = new Set(['k1']);
    const cache = new CredentialsCache(
      async (apiKey) => (allowed.has(apiKey) ? 'allow' : 'forbidden'),
      4_000,
    );
    assert.ok(isPromise(cache.of(request(basic('k1')))));
    assert.deepEqual(await later(cache, request(basic('k1'))), { apiKey: 'k1', decision: 'allow' });
    allowed.delete('k1');
    await refused(cache, request(basic('k1')), 'SEG_FORBIDDEN');
    await refused(cache, request(basic('k1'), basic('k1')), 'SEG_AUTH_MALFORMED');
  });

  test("an async authenticator's rejection is the refusal", async () => {
    const failure = new Error('directory down');
    const cache = new CredentialsCache(async (apiKey) => {
      if (apiKey === 'expired') throw new UnauthorizedError('API token expired');
      if (apiKey === 'suspended') throw new ForbiddenError();
      if (apiKey === 'broken') throw failure;
      return apiKey === 'false' ? false : 'unknown';
    }, 4_000);
    for (let i = 0; i < 2; i++) {
      await refused(cache, request(basic('expired')), 'SEG_AUTH_UNKNOWN');
      await refused(cache, request(basic('suspended')), 'SEG_FORBIDDEN');
      await refused(cache, request(basic('false')), 'SEG_AUTH_UNKNOWN');
      await refused(cache, request(basic('other')), 'SEG_AUTH_UNKNOWN');
      await assert.rejects(
        async () => cache.of(request(basic('broken'))),
        (err) => err === failure,
      );
    }
  });

  test('more than 1024 distinct accepted headers: every one still gives its own key', () => {
    const calls: string[] = [];
    const cache = new CredentialsCache((apiKey) => {
      calls.push(apiKey);
      return 'allow';
    }, 4_000);
    const keys = Array.from({ length: 2100 }, (_, i) => `key-${i}`);
    for (let round = 0; round < 2; round++) {
      for (const key of keys) assert.equal(now(cache, request(basic(key))).apiKey, key);
    }
    for (const key of [...keys].reverse()) assert.equal(now(cache, request(basic(key))).apiKey, key);
    assert.equal(calls.length, 3 * keys.length);
    const repeated = request(basic('key-0'), basic('x'));
    assert.throws(() => cache.of(repeated), { code: 'SEG_AUTH_MALFORMED' });
  });
});
