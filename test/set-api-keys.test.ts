import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createHandler, silentLogger } from '../src/index.ts';
import { segmentHeaders, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';

// setApiKeys: the keys of `apiKeys` replaced while the handler serves (the CLI's SIGHUP reads its keys
// file again with it): a customer added is served, a key taken out refused, without a restart.

const answer = async (handler: ReturnType<typeof createHandler>, key: string, type = 'track') => {
  const res = await inject(handler, { body: { ...trackEvent(), type }, headers: segmentHeaders(key) });
  return res.status === 200 ? 200 : `${res.status} ${res.json().code}`;
};

test('a key added is served, one taken out refused, even where its header was accepted before', async () => {
  const handler = createHandler({ apiKeys: ['old-key'], log: silentLogger, handlers: { track() {} } });
  assert.equal(await answer(handler, 'old-key'), 200);
  assert.equal(await answer(handler, 'new-key'), '401 SEG_AUTH_UNKNOWN');
  handler.setApiKeys(['new-key', { key: 'narrow-key', types: ['identify'] }]);
  assert.equal(await answer(handler, 'new-key'), 200);
  assert.equal(await answer(handler, 'old-key'), '401 SEG_AUTH_UNKNOWN');
  assert.equal(await answer(handler, 'narrow-key'), '403 SEG_TYPE_FORBIDDEN');
});

test('keys that the apiKeys option would refuse are refused, and the current ones kept', async () => {
  const handler = createHandler({ apiKeys: ['kept-key'], log: silentLogger, handlers: { track() {} } });
  assert.throws(() => handler.setApiKeys([]), /must hold at least one key/);
  assert.throws(() => handler.setApiKeys('kept-key' as never), /must be an array of keys, got a string/);
  assert.throws(() => handler.setApiKeys([{ key: 'a', types: ['track'] }, { key: 'a' }]), /other types/);
  assert.equal(await answer(handler, 'kept-key'), 200);
});

test('a handler that authenticates with a function of its own has no keys to replace', () => {
  const handler = createHandler({ authenticate: () => 'allow', log: silentLogger, handlers: { track() {} } });
  assert.throws(() => handler.setApiKeys(['k']), /made with options.authenticate/);
  assert.throws(() => handler.setApiKeys([]), /made with options.authenticate/);
});

// loadApiKeys: the same, built a slice at a time (the CLI's SIGHUP uses it), so that a large key set
// does not hold every request while it loads.

/** `n` keys of customers, none of them the test's. */
const manyKeys = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag}-customer-${i}`);

test('loadApiKeys: requests are answered with the current keys while a large set loads, then with the new ones', async () => {
  const handler = createHandler({ apiKeys: ['old-key'], log: silentLogger, handlers: { track() {} } });
  let turns = 0;
  let loaded = false;
  const counting = setInterval(() => turns++, 0);
  const loading = handler.loadApiKeys([...manyKeys(50_000, 'new'), 'new-key']).then(() => {
    loaded = true;
  });
  // Sent once the load has begun, answered before it ends: the loop was not held for the whole load.
  const during = await answer(handler, 'old-key');
  assert.equal(loaded, false, 'answered before the load ended');
  assert.equal(during, 200);
  await loading;
  clearInterval(counting);
  assert.ok(turns > 1, `${turns} turns of the event loop during the load`);
  assert.equal(await answer(handler, 'new-key'), 200);
  assert.equal(await answer(handler, 'new-customer-49999'), 200);
  assert.equal(await answer(handler, 'old-key'), '401 SEG_AUTH_UNKNOWN');
});

test('loadApiKeys: keys apiKeys would refuse reject it, the current ones kept; a later call wins', async () => {
  const handler = createHandler({ apiKeys: ['kept-key'], log: silentLogger, handlers: { track() {} } });
  await assert.rejects(handler.loadApiKeys([]), /must hold at least one key/);
  await assert.rejects(handler.loadApiKeys([...manyKeys(2_000, 'a'), 'k:x']), /options\.apiKeys\[2000\]/);
  assert.equal(await answer(handler, 'kept-key'), 200);
  // The first load ends after the set that follows it: it replaces nothing.
  const first = handler.loadApiKeys([...manyKeys(50_000, 'first'), 'first-key']);
  handler.setApiKeys(['second-key']);
  await first;
  assert.equal(await answer(handler, 'second-key'), 200);
  assert.equal(await answer(handler, 'first-key'), '401 SEG_AUTH_UNKNOWN');
  const authenticated = createHandler({
    authenticate: () => 'allow',
    log: silentLogger,
    handlers: { track() {} },
  });
  await assert.rejects(
    authenticated.loadApiKeys(['k']),
    /loadApiKeys: this handler was made with options.authenticate/,
  );
});

test('loadApiKeys: a later call that is refused does not undo an earlier one, which resolves with its keys in use', async () => {
  const handler = createHandler({ apiKeys: ['old-key'], log: silentLogger, handlers: { track() {} } });
  const first = handler.loadApiKeys([...manyKeys(50_000, 'load'), 'new-key']);
  await assert.rejects(handler.loadApiKeys([]), /at least one key/);
  await first;
  assert.equal(await answer(handler, 'new-key'), 200);
  assert.equal(await answer(handler, 'old-key'), '401 SEG_AUTH_UNKNOWN');
});

test('a spec changed after loadApiKeys took it, or read twice, changes nothing: each is read once, as checked', async () => {
  // The keys were checked at the call, then read again on later turns as the authenticator was built: a
  // rate set to -1 meanwhile turned that key's limit off; a getter could give one value to the check and
  // another to the authenticator.
  const handler = createHandler({ apiKeys: ['first'], log: silentLogger, handlers: { track() {} } });
  const limited = { key: 'limited', rate: 2 };
  // Checked at once, first; enough keys after it that the authenticator is built on later turns.
  const loading = handler.loadApiKeys([limited, ...Array.from({ length: 50_000 }, (_, i) => `filler-${i}`)]);
  limited.rate = -1;
  await loading;
  const answers = [];
  for (let i = 0; i < 4; i++) answers.push(await answer(handler, 'limited'));
  assert.ok(answers.includes('429 SEG_RATE_LIMITED'), answers.join());

  let reads = 0;
  const signed = {
    key: 'signed',
    get signatureSecret() {
      return ++reads === 1 ? 'a-secret-of-32-characters-or-so!' : undefined;
    },
  };
  handler.setApiKeys([signed]);
  assert.equal(reads, 1);
  assert.match(String(await answer(handler, 'signed')), /^401 SEG_SIGNATURE/);
});

test('loadApiKeys: a burst of calls builds one set at a time, the newest first, and every call is checked', async () => {
  // A partner reloading its keys at each customer's signup: every call built its own set beside the
  // others, each holding the event loop for a slice of its own every turn (ten of 200,000 keys: 640 MB,
  // the loop held up to 220 ms), and the newest took effect only when all of them were built.
  const handler = createHandler({ apiKeys: ['old-key'], log: silentLogger, handlers: { track() {} } });
  const settled: string[] = [];
  const load = (name: string, keys: unknown[]) =>
    handler.loadApiKeys(keys as string[]).then(
      () => settled.push(`${name} resolved`),
      () => settled.push(`${name} rejected`),
    );
  const calls = [
    load('0', [...manyKeys(20_000, 'zero'), 'key-0']),
    // A key repeated with other types: refused, as setApiKeys refuses it, though newer calls win.
    load('repeat', [...manyKeys(20_000, 'repeat'), { key: 'r', types: ['track'] }, 'r']),
    load('1', [...manyKeys(20_000, 'one'), 'key-1']),
    load('invalid', [...manyKeys(20_000, 'invalid'), 'k:x']),
    load('2', [...manyKeys(20_000, 'two'), 'key-2']),
  ];
  await Promise.all(calls);
  assert.deepEqual(settled, [
    'invalid rejected',
    '2 resolved',
    '1 resolved',
    'repeat rejected',
    '0 resolved',
  ]);
  assert.equal(await answer(handler, 'key-2'), 200);
  for (const key of ['key-0', 'key-1', 'r', 'old-key']) {
    assert.equal(await answer(handler, key), '401 SEG_AUTH_UNKNOWN', key);
  }
});

test('loadApiKeys: in a burst, a newer set refused leaves the one before it to win; a short list is read in the call', async () => {
  const handlers = { track() {}, identify() {} };
  const handler = createHandler({ apiKeys: ['old-key'], log: silentLogger, handlers });
  const first = handler.loadApiKeys([...manyKeys(20_000, 'first'), 'first-key']);
  const narrowed: { key: string; types?: ['identify'] } = { key: 'second-key', types: ['identify'] };
  const second = handler.loadApiKeys([...manyKeys(300, 'second'), narrowed]);
  // Read in the call though another call's list was still being checked: widening it now changes nothing.
  delete narrowed.types;
  const third = handler.loadApiKeys([...manyKeys(20_000, 'third'), { key: 't', rate: 1 }, 't']);
  await assert.rejects(third, /apiKeys\[20001\] gives the key of apiKeys\[20000\] other types/);
  await Promise.all([first, second]);
  assert.equal(await answer(handler, 'second-key', 'identify'), 200);
  assert.equal(await answer(handler, 'second-key'), '403 SEG_TYPE_FORBIDDEN');
  assert.equal(await answer(handler, 'first-key'), '401 SEG_AUTH_UNKNOWN');
});

test('loadApiKeys: a call made after setApiKeys wins over one made before it, which resolves with nothing loaded', async () => {
  const handler = createHandler({ apiKeys: ['old-key'], log: silentLogger, handlers: { track() {} } });
  const before = handler.loadApiKeys([...manyKeys(30_000, 'before'), 'before-key']);
  handler.setApiKeys(['set-key']);
  const after = handler.loadApiKeys([...manyKeys(300, 'after'), 'after-key']);
  const order: string[] = [];
  await Promise.all([before.then(() => order.push('before')), after.then(() => order.push('after'))]);
  assert.deepEqual(order, ['after', 'before'], 'the newer set is not held behind the older one');
  assert.equal(await answer(handler, 'after-key'), 200);
  for (const key of ['before-key', 'set-key', 'old-key']) {
    assert.equal(await answer(handler, key), '401 SEG_AUTH_UNKNOWN', key);
  }
});
