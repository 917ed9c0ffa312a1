import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import inject from 'light-my-request';
import type { Handlers } from '../src/dispatch.ts';
import { createFetchHandler } from '../src/fetch.ts';
import { createHandler } from '../src/handler.ts';
import { silentLogger } from '../src/log.ts';
import { type HandlerOptions, resolveHandlerOptions } from '../src/options.ts';
import { createServer } from '../src/server.ts';
import { segmentHeaders, trackEvent } from './helpers.ts';

const handlers: Handlers = { track: () => {} };
const base: HandlerOptions = { handlers, apiKeys: ['k1'], log: silentLogger };

/** Resolves with `base` plus overrides; the cast lets a test pass what the types forbid. */
const resolve = (overrides: Record<string, unknown>) =>
  resolveHandlerOptions({ ...base, ...overrides } as HandlerOptions);

describe('defaults', () => {
  test('path, healthPath, limits and timeouts', () => {
    const opts = resolveHandlerOptions(base);
    assert.equal(opts.path, '/');
    assert.equal(opts.healthPath, '/health');
    assert.equal(opts.maxBodyBytes, 524288);
    assert.equal(opts.bodyTimeoutMs, 10000);
    assert.equal(opts.handlerTimeoutMs, 4000);
    assert.equal(opts.realm, 'segment-endpoint');
    assert.equal(opts.log, silentLogger);
  });

  test('given values win over the defaults', () => {
    const opts = resolve({ path: '/segment', healthPath: '/up', maxBodyBytes: 1024, handlerTimeoutMs: 50 });
    assert.equal(opts.path, '/segment');
    assert.equal(opts.healthPath, '/up');
    assert.equal(opts.maxBodyBytes, 1024);
    assert.equal(opts.handlerTimeoutMs, 50);
  });

  test('the result is frozen, and so are its handlers', () => {
    const opts = resolveHandlerOptions(base);
    assert.ok(Object.isFrozen(opts));
    assert.ok(Object.isFrozen(opts.handlers));
    assert.notEqual(opts.handlers, handlers, 'a copy: later changes to the input do not leak in');
  });

  test('apiKeys become an authenticator', async () => {
    const opts = resolve({ apiKeys: ['k1', { key: 'k2', types: ['track'] }] });
    assert.equal(await opts.authenticate('k1'), 'allow');
    assert.deepEqual(await opts.authenticate('k2'), { allow: ['track'] });
    assert.equal(await opts.authenticate('nope'), 'unknown');
  });

  test('authenticate is used as given', () => {
    const authenticate = () => 'allow' as const;
    assert.equal(resolve({ apiKeys: undefined, authenticate }).authenticate, authenticate);
  });
});

describe('TypeError', () => {
  test('neither apiKeys nor authenticate: the endpoint never runs open', () => {
    assert.throws(() => resolve({ apiKeys: undefined }), TypeError);
  });

  test('authenticate that is not a function', () => {
    assert.throws(() => resolve({ authenticate: 'allow' }), { name: 'TypeError', message: /authenticate/ });
  });

  test('a handler that is not a function', () => {
    assert.throws(() => resolve({ handlers: { track: 'handleTrack' } }), {
      name: 'TypeError',
      message: /handlers\.track/,
    });
  });

  test('handlers missing or not an object', () => {
    for (const value of [undefined, null, 'track']) {
      assert.throws(() => resolve({ handlers: value }), TypeError, String(value));
    }
  });

  test('a non-integer maxBodyBytes, naming the option', () => {
    for (const value of [1.5, '1024', Number.NaN]) {
      assert.throws(() => resolve({ maxBodyBytes: value }), { name: 'TypeError', message: /maxBodyBytes/ });
    }
  });

  test('a realm that would break its quoted string in WWW-Authenticate is refused: a quote, a backslash, a control', () => {
    for (const realm of ['say "hi"', 'ends\\', 'tab\there', 'é']) {
      assert.throws(
        () => resolve({ realm }),
        { name: 'TypeError', message: /^options\.realm must be/ },
        realm,
      );
    }
    assert.equal(resolve({ realm: 'Partner (EU) #1' }).realm, 'Partner (EU) #1');
  });

  test('a path not starting with "/"', () => {
    assert.throws(() => resolve({ path: 'events' }), { name: 'TypeError', message: /path/ });
  });

  test('a path with a query, a fragment or a space is refused for what it holds, not for its start', () => {
    for (const path of ['/a?b', '/a#b', '/a b']) {
      assert.throws(() => resolve({ path }), {
        name: 'TypeError',
        message:
          /^options\.path must be a path alone, without a query \(\?\), a fragment \(#\) or spaces, got "/,
      });
    }
  });

  test('apiKeys that is not iterable', () => {
    assert.throws(() => resolve({ apiKeys: 'k1' }), { name: 'TypeError', message: /apiKeys/ });
  });

  test('a field of an api key spec that is not one: refused, so a misspelt limit cannot widen a key', () => {
    // `tpyes` ignored would give the key every type, `ratee` no rate limit: the opposite of what was meant.
    assert.throws(() => resolve({ apiKeys: [{ key: 'k1', tpyes: ['track'] }] }), {
      name: 'TypeError',
      message:
        /^options\.apiKeys\[0\]: "tpyes" is not a field of an API key: did you mean types\? \(key, types, signatureSecret, rate\)$/,
    });
    assert.throws(() => resolve({ apiKeys: ['k0', { key: 'k1', allow: ['track'] }] }), {
      name: 'TypeError',
      message:
        /^options\.apiKeys\[1\]: a field is not one of an API key's \(key, types, signatureSecret, rate\)$/,
    });
    assert.throws(() => resolve({ apiKeys: [{ key: 'k1', types: 'track' }] }), {
      name: 'TypeError',
      message: /^options\.apiKeys\[0\]: types must be a list of event types$/,
    });
    // biome-ignore lint/suspicious/noSparseArray: a hole where a type should be
    for (const types of [[null], ['track', 7], [, 'track']]) {
      assert.throws(() => resolve({ apiKeys: [{ key: 'k1', types }] }), {
        name: 'TypeError',
        message: /^options\.apiKeys\[0\]: types must be a list of event types$/,
      });
    }
    const parsed = JSON.parse('[{"key":"k1","__proto__":{"types":["track"]}}]');
    assert.throws(() => resolve({ apiKeys: parsed }), { name: 'TypeError', message: /a field is not one/ });
    assert.doesNotThrow(() =>
      resolve({ apiKeys: [{ key: 'k1', types: ['track'], signatureSecret: 's', rate: 5 }] }),
    );
  });

  test('an inherited misspelt key spec field is refused, as inherited types and rate apply', async () => {
    // Specs made from shared limits (`{ __proto__: limits, key }`, Object.create) take `types` and `rate`
    // from their prototype; a misspelt one there was ignored, the key given every type or no limit.
    const limits = { tpyes: ['track'] };
    assert.throws(() => resolve({ apiKeys: [{ __proto__: limits, key: 'k1' }] }), {
      name: 'TypeError',
      message: /^options\.apiKeys\[0\]: "tpyes" is not a field of an API key: did you mean types\?/,
    });
    const deeper = Object.assign(Object.create(Object.create({ ratee: 5 })), { key: 'k1' });
    assert.throws(() => resolve({ apiKeys: [deeper] }), { name: 'TypeError', message: /"ratee"/ });
    const handler = createHandler({ ...base, apiKeys: ['k0'] });
    assert.throws(() => handler.setApiKeys([{ __proto__: limits, key: 'k1' } as never]), /"tpyes"/);
    // What a spec inherits rightly spelt is its own; a class's getters and methods are no fields.
    const opts = resolve({ apiKeys: [{ __proto__: { types: ['track'], rate: 5 }, key: 'k1' }] });
    assert.deepEqual(await opts.authenticate('k1'), { allow: ['track'], rate: 5 });
    class Key {
      constructor(readonly key: string) {}
      get types() {
        return ['identify'];
      }
      describe() {
        return 'a key for identify';
      }
    }
    assert.deepEqual(await resolve({ apiKeys: [new Key('k2')] }).authenticate('k2'), { allow: ['identify'] });
  });
});

describe('RangeError', () => {
  test('a handler under a key that is not an event type', () => {
    assert.throws(() => resolve({ handlers: { Track: () => {} } }), { name: 'RangeError', message: /Track/ });
    assert.throws(() => resolve({ handlers: { constructor: () => {} } }), RangeError);
  });

  test('maxBodyBytes: 1 passes, 0 is a RangeError', () => {
    assert.equal(resolve({ maxBodyBytes: 1 }).maxBodyBytes, 1);
    assert.throws(() => resolve({ maxBodyBytes: 0 }), { name: 'RangeError', message: /maxBodyBytes/ });
    assert.throws(() => resolve({ maxBodyBytes: -1 }), RangeError);
  });

  test('timeouts: 1 ms passes, 0 is a RangeError', () => {
    assert.equal(resolve({ bodyTimeoutMs: 1 }).bodyTimeoutMs, 1);
    assert.throws(() => resolve({ bodyTimeoutMs: 0 }), { name: 'RangeError', message: /bodyTimeoutMs/ });
    assert.throws(() => resolve({ handlerTimeoutMs: 0 }), {
      name: 'RangeError',
      message: /handlerTimeoutMs/,
    });
  });

  test('path === healthPath', () => {
    assert.throws(() => resolve({ path: '/x', healthPath: '/x' }), RangeError);
    assert.throws(() => resolve({ healthPath: '/' }), RangeError);
  });

  test('an unknown type in an api key spec: named back only when it is a misspelt type', () => {
    assert.throws(() => resolve({ apiKeys: [{ key: 'k1', types: ['track', 'purchase'] }] }), {
      name: 'RangeError',
      message: /^options\.apiKeys\[0\]: one of the types is not an event type \(identify, /,
    });
    assert.throws(() => resolve({ apiKeys: [{ key: 'k1', types: ['trak'] }] }), {
      name: 'RangeError',
      message: /"trak" is not an event type: did you mean track\?/,
    });
  });

  test('an empty apiKeys list', () => {
    assert.throws(() => resolve({ apiKeys: [] }), RangeError);
  });
});

describe('secrets in errors', () => {
  test('an error about a bad API key does not contain the key', () => {
    for (const key of ['sk_live_abc:123', 'sk_live_abc:', ':sk_live_abc']) {
      assert.throws(
        () => resolve({ apiKeys: ['good-key', key] }),
        (err: Error) =>
          err instanceof TypeError &&
          /apiKeys\[1\]/.test(err.message) &&
          !err.message.includes('sk_live_abc'),
        key,
      );
    }
  });

  test('an error about a bad type in a key spec does not contain the key', () => {
    assert.throws(
      () => resolve({ apiKeys: [{ key: 'sk_live_abc', types: ['purchase'] }] }),
      (err: Error) => err instanceof RangeError && !err.message.includes('sk_live_abc'),
    );
  });
});

describe('idempotency: maxEntries 0 is off, in the library as on the command line', () => {
  test('{ maxEntries: 0 } leaves no duplicate filter, as false does', () => {
    assert.equal(resolve({ idempotency: { maxEntries: 0 } }).idempotency, undefined);
    assert.equal(resolve({ idempotency: false }).idempotency, undefined);
    assert.notEqual(resolve({ idempotency: { maxEntries: 1 } }).idempotency, undefined);
    assert.notEqual(resolveHandlerOptions(base).idempotency, undefined);
  });

  test('a misspelt name in idempotency is refused, not left to the default; a half-given store too', () => {
    assert.throws(() => resolve({ idempotency: { maxEntry: 0 } }), {
      name: 'TypeError',
      message: 'options.idempotency.maxEntry is not an option (the options: maxEntries, ttlMs, now)',
    });
    assert.throws(() => resolve({ idempotency: { ttl: 1 } }), {
      name: 'TypeError',
      message: 'options.idempotency.ttl is not an option: did you mean ttlMs?',
    });
    for (const half of [{ claim: 1 }, { claim: () => 'new' }, { complete: () => {}, release: () => {} }]) {
      assert.throws(() => resolve({ idempotency: half }), {
        name: 'TypeError',
        message: 'options.idempotency: a store needs claim, complete and release functions',
      });
    }
  });

  test('a copy that arrives while the first is still running is processed alongside it', async () => {
    // With a filter, the copy would wait for the first, which waits for the copy: the first would be cut
    // off by handlerTimeoutMs (503) and only then the copy run. Off, both run and both answer 200.
    let calls = 0;
    let bothRunning: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      bothRunning = resolve;
    });
    const handler = createHandler({
      ...base,
      handlerTimeoutMs: 2_000,
      idempotency: { maxEntries: 0 },
      handlers: {
        track: async () => {
          calls++;
          if (calls === 2) bothRunning();
          await gate;
        },
      },
    });
    const event = trackEvent({ messageId: 'the-same-event' });
    const send = () =>
      inject(handler, { method: 'POST', url: '/', headers: segmentHeaders('k1'), payload: event });
    const answers = await Promise.all([send(), send()]);
    assert.deepEqual(
      answers.map((answer) => answer.statusCode),
      [200, 200],
    );
    assert.equal(calls, 2);
  });
});

describe('option names', () => {
  // TypeScript refuses a misspelt option in an object literal; JavaScript, or an object built elsewhere,
  // would otherwise have it ignored and the default apply.
  const given = (extra: Record<string, unknown>) => ({ ...base, ...extra }) as HandlerOptions;

  test('a misspelt option is refused, naming it and the option it most likely is', () => {
    assert.throws(() => createHandler(given({ maxBodyByte: 5 })), {
      name: 'TypeError',
      message: 'options.maxBodyByte is not an option: did you mean maxBodyBytes?',
    });
    assert.throws(() => createHandler(given({ colour: 'blue' })), {
      name: 'TypeError',
      message: /^options\.colour is not an option \(the options: handlers, apiKeys, .*\)$/,
    });
  });

  test("the server's own options are createServer's, not the handler's", () => {
    assert.throws(() => createHandler(given({ port: 0 })), /options\.port is not an option/);
    const server = createServer({ ...base, http: true, port: 0, maxConnections: 10 });
    assert.equal(typeof server.listen, 'function');
    assert.throws(() => createServer({ ...base, http: true, prot: 0 } as HandlerOptions), {
      message: 'options.prot is not an option: did you mean port?',
    });
  });

  test('a misspelt option inherited from a prototype is refused as an own one', () => {
    const options = Object.assign(Object.create({ maxBodyByte: 1024 }), base);
    assert.throws(() => createHandler(options), /options\.maxBodyByte is not an option/);
  });

  test("createFetchHandler's basePath in its options is pointed to the second argument", () => {
    assert.throws(() => createFetchHandler(given({ basePath: '/segment' })), {
      message: 'options.basePath is not an option: give it as createFetchHandler(options, { basePath })',
    });
  });

  test("createFetchHandler's second argument is checked as the options are: a basePath that is no path, or a misspelt name, is refused", () => {
    const fetchHandler = (mount: unknown) => () =>
      createFetchHandler(given({}), mount as { basePath?: string });
    const where = 'createFetchHandler(options, { basePath }): ';
    for (const basePath of ['segment', 5, '/a?b', '/seg ment']) {
      assert.throws(
        fetchHandler({ basePath }),
        (err: Error) => err instanceof TypeError && err.message.startsWith(`${where}basePath must be a path`),
      );
    }
    assert.throws(fetchHandler({ basepath: '/segment' }), {
      name: 'TypeError',
      message: `${where}basepath is not an option: did you mean basePath?`,
    });
    assert.throws(fetchHandler(null), {
      name: 'TypeError',
      message: `${where}the second argument must be an object, got null`,
    });
    for (const mount of [undefined, {}, { basePath: undefined }, { basePath: '/segment/' }]) {
      assert.equal(typeof fetchHandler(mount)(), 'function');
    }
  });

  test('an option set to undefined is still a known name, or refused as any other', () => {
    assert.doesNotThrow(() => createHandler(given({ maxBodyBytes: undefined })));
    assert.throws(() => createHandler(given({ maxBodyByte: undefined })), /maxBodyByte is not an option/);
  });
});
