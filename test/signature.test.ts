import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import { createHandler, silentLogger } from '../src/index.ts';
import { signedPayload } from '../src/signature.ts';
import { API_KEY, inject, segmentHeaders, trackEvent } from './helpers.ts';

const sign = (secret: string, text: string) => createHmac('sha1', secret).update(text).digest('hex');

describe('X-Signature', () => {
  const seen: unknown[] = [];
  const handler = createHandler({
    apiKeys: [API_KEY, { key: 'own-secret', signatureSecret: 'per-key' }],
    signatureSecret: 'shared',
    log: silentLogger,
    handlers: { track: (event) => void seen.push(event) },
  });
  const body = JSON.stringify(trackEvent());

  test('the hex HMAC-SHA1 of the body under the secret is accepted, in any case', async () => {
    for (const signature of [sign('shared', body), sign('shared', body).toUpperCase()]) {
      const res = await inject(handler, { headers: { ...segmentHeaders(), 'x-signature': signature }, body });
      assert.equal(res.status, 200, res.body);
    }
  });

  test('missing, wrong, or of another body: 401 with a stable code', async () => {
    const cases: Array<[string | undefined, string]> = [
      [undefined, 'SEG_SIGNATURE_MISSING'],
      ['', 'SEG_SIGNATURE_MISSING'],
      [sign('other-secret', body), 'SEG_SIGNATURE_INVALID'],
      [sign('shared', `${body} `), 'SEG_SIGNATURE_INVALID'],
      ['not-hex', 'SEG_SIGNATURE_INVALID'],
    ];
    for (const [signature, code] of cases) {
      const res = await inject(handler, { headers: { ...segmentHeaders(), 'x-signature': signature }, body });
      assert.equal(res.status, 401, String(signature));
      assert.equal(res.json().code, code);
    }
  });

  test("a key's own secret wins over the shared one", async () => {
    const headers = segmentHeaders('own-secret');
    const own = await inject(handler, {
      headers: { ...headers, 'x-signature': sign('per-key', body) },
      body,
    });
    assert.equal(own.status, 200);
    const shared = await inject(handler, {
      headers: { ...headers, 'x-signature': sign('shared', body) },
      body,
    });
    assert.equal(shared.status, 401);
  });

  test('without a secret configured, no signature is required', async () => {
    const open = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers: { track: () => {} } });
    assert.equal((await inject(open, { body })).status, 200);
  });

  test('a batch (JSON array) is signed by its first element', () => {
    const first = { type: 'track', event: 'A', userId: 'u' };
    assert.equal(signedPayload([first, { type: 'track' }], '[...]'), JSON.stringify(first));
    assert.equal(signedPayload({ a: 1 }, '{ "a": 1 }'), '{ "a": 1 }');
  });

  test('a signing secret must be a non-empty string, and the error does not echo it', () => {
    assert.throws(
      () => createHandler({ apiKeys: [API_KEY], signatureSecret: '', handlers: {}, log: silentLogger }),
      TypeError,
    );
    assert.throws(
      () =>
        createHandler({
          apiKeys: [{ key: 'k', signatureSecret: 5 as unknown as string }],
          handlers: {},
          log: silentLogger,
        }),
      /signatureSecret/,
    );
  });
});
