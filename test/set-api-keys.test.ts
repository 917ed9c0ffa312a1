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
