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
