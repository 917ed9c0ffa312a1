import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import { createHandler, silentLogger } from '../src/index.ts';
import { API_KEY, segmentHeaders, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';

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

  test('a request with no signature is refused on its headers: its body is not read, let alone parsed', async () => {
    // As a wrong key is: an unsigned flood costs no body reads, and its 401 says what is missing
    // rather than the 400 its body would have earned.
    const res = await inject(handler, { headers: segmentHeaders(), body: '{"type":"track",' });
    assert.equal(res.status, 401, res.body);
    assert.equal(res.json().code, 'SEG_SIGNATURE_MISSING');
  });

  test('settings beside a signed body: 401, since the signature does not cover what would be stored with it', async () => {
    // CONTRACT.md: accept a signature only when it covers everything stored. X-Segment-Settings is
    // stored with the event, and no signature covers a header.
    const before = seen.length;
    const settings = Buffer.from(JSON.stringify({ apiSecret: 'forged' })).toString('base64');
    const res = await inject(handler, {
      headers: { ...segmentHeaders(), 'x-signature': sign('shared', body), 'x-segment-settings': settings },
      body,
    });
    assert.equal(res.status, 401, res.body);
    assert.equal(res.json().code, 'SEG_SIGNATURE_SETTINGS');
    assert.equal(seen.length, before, 'nothing handled');
    // An empty header carries no settings: nothing uncovered.
    const empty = await inject(handler, {
      headers: { ...segmentHeaders(), 'x-signature': sign('shared', body), 'x-segment-settings': '' },
      body,
    });
    assert.equal(empty.status, 200, empty.body);
  });

  test('settings that do not decode, where a signature is required: the same 401, signed or not', async () => {
    // A 400 SEG_SETTINGS_INVALID told a sender with no signature what this endpoint thought of its
    // settings before it said that the request was not signed.
    const before = seen.length;
    for (const settings of ['not base64 of JSON!', Buffer.from('[1,2]').toString('base64')]) {
      for (const signature of [sign('shared', body), undefined]) {
        const headers = { ...segmentHeaders(), 'x-segment-settings': settings };
        const res = await inject(handler, {
          headers: signature === undefined ? headers : { ...headers, 'x-signature': signature },
          body,
        });
        assert.equal(res.status, 401, `${settings} ${signature}: ${res.body}`);
        assert.equal(res.json().code, 'SEG_SIGNATURE_SETTINGS');
      }
    }
    assert.equal(seen.length, before, 'nothing handled');
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

  test('a signing secret must be a string that is not blank, and the error does not echo it', () => {
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

test("requests that fail the signature spend none of the key's rate: its signed events still pass", async () => {
  // Each took its token before the check: one holding the key but not the secret kept a customer's signed
  // events at 429 (retried) with unsigned or mis-signed requests, answered 401 until then.
  const handler = createHandler({
    apiKeys: [API_KEY],
    signatureSecret: 'shared',
    rateLimit: 3,
    log: silentLogger,
    handlers: { track: () => {} },
  });
  const body = JSON.stringify(trackEvent());
  const sent = (signature: string | undefined) =>
    inject(handler, { headers: { ...segmentHeaders(), 'x-signature': signature }, body });
  for (const signature of [undefined, '0000', sign('other', body)]) {
    for (let i = 0; i < 5; i++) assert.equal((await sent(signature)).status, 401, String(signature));
  }
  // Refused before its signature could be checked (a body that is no JSON): not known to be the key
  // holder's either.
  for (let i = 0; i < 5; i++) {
    const res = await inject(handler, { headers: { ...segmentHeaders(), 'x-signature': '0000' }, body: '{' });
    assert.equal(res.status, 400);
  }
  for (let i = 0; i < 3; i++) assert.equal((await sent(sign('shared', body))).status, 200);
  const past = await sent(sign('shared', body));
  assert.equal(past.status, 429, 'the rate holds for signed events');
});

// Segment signs with a new secret from the moment the customer saves it, and a 401 is final: a secret
// is rotated by accepting the new beside the old for a while (README, "Rotating a secret").
describe('rotating a secret: several accepted at once', () => {
  const seen: unknown[] = [];
  const handler = createHandler({
    apiKeys: [API_KEY, { key: 'own-secrets', signatureSecret: ['own-old', 'own-new'] }],
    signatureSecret: ['old', 'new'],
    log: silentLogger,
    handlers: { track: (event) => void seen.push(event) },
  });
  const body = JSON.stringify(trackEvent());
  const status = async (signature: Record<string, string>, key = API_KEY, text = body) =>
    (await inject(handler, { headers: { ...segmentHeaders(key), ...signature }, body: text })).status;

  test('a signature under any of the secrets is accepted, in either header; under none, 401', async () => {
    for (const secret of ['old', 'new']) {
      assert.equal(await status({ 'x-signature': sign(secret, body) }), 200, secret);
      assert.equal(await status({ 'x-segment-signature': sign(secret, body) }), 200, secret);
    }
    const res = await inject(handler, {
      headers: { ...segmentHeaders(), 'x-signature': sign('older', body) },
      body,
    });
    assert.equal(res.status, 401);
    assert.equal(res.json().code, 'SEG_SIGNATURE_INVALID');
    // Both headers, each under another secret: either covering the body suffices.
    assert.equal(
      await status({ 'x-signature': sign('older', body), 'x-segment-signature': sign('new', body) }),
      200,
    );
  });

  test("a key's own secrets win over the shared ones", async () => {
    assert.equal(await status({ 'x-signature': sign('own-old', body) }, 'own-secrets'), 200);
    assert.equal(await status({ 'x-signature': sign('own-new', body) }, 'own-secrets'), 200);
    assert.equal(await status({ 'x-signature': sign('new', body) }, 'own-secrets'), 401);
  });

  test('a batch signed on its first event under the second secret is as partial as under the first', async () => {
    const events = [trackEvent(), trackEvent()];
    const text = JSON.stringify(events);
    const res = await inject(handler, {
      headers: { ...segmentHeaders(), 'x-signature': sign('new', JSON.stringify(events[0])) },
      body: text,
    });
    assert.equal(res.json().code, 'SEG_SIGNATURE_PARTIAL');
    assert.equal(await status({ 'x-signature': sign('new', text) }, API_KEY, text), 200);
  });

  test('an authenticate may answer several secrets too; an empty or overlong list is its bug (500)', async () => {
    const decisions: Record<string, unknown> = {
      two: { signatureSecret: ['a-old', 'a-new'] },
      none: { signatureSecret: [] },
      five: { signatureSecret: ['1', '2', '3', '4', '5'] },
      blank: { signatureSecret: ['x', ''] },
    };
    const custom = createHandler({
      authenticate: (key) => decisions[key] as 'allow',
      log: silentLogger,
      handlers: { track() {} },
    });
    const send = (key: string, secret: string) =>
      inject(custom, { headers: { ...segmentHeaders(key), 'x-signature': sign(secret, body) }, body });
    assert.equal((await send('two', 'a-new')).status, 200);
    assert.equal((await send('two', 'a-old')).status, 200);
    assert.equal((await send('two', 'a-other')).status, 401);
    for (const key of ['none', 'five', 'blank']) assert.equal((await send(key, 'x')).status, 500, key);
  });

  test('a list of 1 to 4 non-empty strings; anything else is refused at start, without echoing a secret', () => {
    for (const bad of [[], ['a', ''], ['a', 5], ['1', '2', '3', '4', '5']]) {
      assert.throws(
        () =>
          createHandler({
            apiKeys: [API_KEY],
            signatureSecret: bad as string[],
            handlers: {},
            log: silentLogger,
          }),
        (err: Error) =>
          err instanceof TypeError && /1 to 4/.test(err.message) && !err.message.includes('"a"'),
      );
      assert.throws(
        () =>
          createHandler({
            apiKeys: [{ key: 'k', signatureSecret: bad as string[] }],
            handlers: {},
            log: silentLogger,
          }),
        /apiKeys\[0\]: signatureSecret must be/,
      );
    }
  });

  test('a blank secret is refused wherever it is given: white space would be a secret anyone can sign with', async () => {
    for (const signatureSecret of [' ', ['real', ' '], ['real', '\t\n']]) {
      const option = () =>
        createHandler({ apiKeys: [API_KEY], signatureSecret, handlers: {}, log: silentLogger });
      assert.throws(option, /not blank/);
      const key = () =>
        createHandler({ apiKeys: [{ key: 'k', signatureSecret }], handlers: {}, log: silentLogger });
      assert.throws(key, /not blank/);
    }
    const custom = createHandler({
      authenticate: () => ({ signatureSecret: ['real', ' '] }),
      log: silentLogger,
      handlers: { track() {} },
    });
    const res = await inject(custom, {
      headers: { ...segmentHeaders(), 'x-signature': sign(' ', body) },
      body,
    });
    assert.equal(res.status, 500, 'a bug in the authenticator, not a pass');
  });

  test('a list is read once: what was checked is what signs, whatever its getters answer next', async () => {
    let reads = 0;
    const tricky = ['placeholder'];
    Object.defineProperty(tricky, 0, { get: () => (reads++ === 0 ? 'checked' : ''), enumerable: true });
    const own = createHandler({
      apiKeys: [API_KEY],
      signatureSecret: tricky,
      log: silentLogger,
      handlers: { track() {} },
    });
    const send = async (secret: string) =>
      (await inject(own, { headers: { ...segmentHeaders(), 'x-signature': sign(secret, body) }, body }))
        .status;
    assert.deepEqual([await send('checked'), await send('')], [200, 401]);
  });

  test("an authenticate's answer is read once: changed, or a getter answering otherwise, after the check, it still decides", async () => {
    const changing = { signatureSecret: ['answered'] };
    let reads = 0;
    const answers: Record<string, unknown> = {
      changing,
      getter: {
        get signatureSecret() {
          return reads++ === 0 ? 'answered' : undefined;
        },
      },
    };
    const custom = createHandler({
      authenticate: (key) => {
        // Changed once answered, before the body is read and its signature checked.
        queueMicrotask(() => {
          changing.signatureSecret[0] = '';
        });
        return answers[key] as 'allow';
      },
      log: silentLogger,
      handlers: { track() {} },
    });
    const send = async (key: string, secret?: string) => {
      const signature = secret === undefined ? {} : { 'x-signature': sign(secret, body) };
      return (await inject(custom, { headers: { ...segmentHeaders(key), ...signature }, body })).status;
    };
    assert.equal(await send('changing', ''), 401);
    assert.equal(await send('getter'), 401, 'unsigned, though the getter answers no secret the second time');
  });

  test("a key's own secret is its own: one a polluted Object.prototype lists is not taken for it", async () => {
    const proto = Object.prototype as { signatureSecret?: unknown };
    proto.signatureSecret = ['polluted'];
    try {
      const typed = createHandler({
        apiKeys: [{ key: 'typed', types: ['track'] }],
        signatureSecret: 'shared',
        log: silentLogger,
        handlers: { track() {} },
      });
      const send = async (secret: string) =>
        (
          await inject(typed, {
            headers: { ...segmentHeaders('typed'), 'x-signature': sign(secret, body) },
            body,
          })
        ).status;
      assert.deepEqual([await send('shared'), await send('polluted')], [200, 401]);
    } finally {
      delete proto.signatureSecret;
    }
  });

  test('a batch signed whole under one secret is accepted, though X-Signature signs its first event under another', async () => {
    const events = [trackEvent(), trackEvent()];
    const text = JSON.stringify(events);
    const res = await inject(handler, {
      headers: {
        ...segmentHeaders(),
        'x-signature': sign('old', JSON.stringify(events[0])),
        'x-segment-signature': sign('new', text),
      },
      body: text,
    });
    assert.equal(res.status, 200, res.body);
  });

  test("the list is the endpoint's own copy: the caller's array changed after start changes nothing", async () => {
    const secrets = ['kept'];
    const own = createHandler({
      apiKeys: [API_KEY],
      signatureSecret: secrets,
      log: silentLogger,
      handlers: { track() {} },
    });
    secrets[0] = 'swapped';
    secrets.push('added');
    const send = async (secret: string) =>
      (await inject(own, { headers: { ...segmentHeaders(), 'x-signature': sign(secret, body) }, body }))
        .status;
    assert.deepEqual([await send('kept'), await send('swapped'), await send('added')], [200, 401, 401]);
  });
});

test("setSignatureSecret replaces the option's secrets from the next request; a bad one throws and changes nothing", async () => {
  const handler = createHandler({
    apiKeys: [API_KEY, { key: 'own', signatureSecret: 'own-secret' }],
    signatureSecret: 'first',
    log: silentLogger,
    handlers: { track() {} },
  });
  const body = JSON.stringify(trackEvent());
  const status = async (secret: string, key = API_KEY) =>
    (await inject(handler, { headers: { ...segmentHeaders(key), 'x-signature': sign(secret, body) }, body }))
      .status;
  handler.setSignatureSecret(['first', 'second']);
  assert.deepEqual([await status('first'), await status('second')], [200, 200]);
  handler.setSignatureSecret('second');
  assert.deepEqual([await status('first'), await status('second')], [401, 200]);
  assert.equal(await status('own-secret', 'own'), 200, "a key's own secret still wins");
  for (const bad of [undefined, '', [], ['a', 'b', 'c', 'd', 'e']]) {
    assert.throws(
      () => handler.setSignatureSecret(bad as string),
      /setSignatureSecret must be a string that is not blank/,
    );
  }
  assert.equal(await status('second'), 200, 'the secret in use stays');
});

// Segment's Webhooks (Actions) batching posts a JSON array. Its legacy X-Signature signs only the first
// event's data; the opt-in X-Segment-Signature signs the whole array. A signature must cover everything
// stored, unless the operator opts in to the legacy batch signing.
describe('signatures on a JSON array (Webhooks (Actions) batching)', () => {
  const make = (signatureLegacyBatch?: boolean) => {
    const stored: unknown[] = [];
    const handler = createHandler({
      apiKeys: [API_KEY],
      signatureSecret: 'shared',
      ...(signatureLegacyBatch !== undefined && { signatureLegacyBatch }),
      log: silentLogger,
      handlers: { track: (event) => void stored.push(event) },
    });
    return { handler, stored };
  };
  const events = [trackEvent(), trackEvent(), trackEvent()];
  const body = JSON.stringify(events);
  const firstOnly = sign('shared', JSON.stringify(events[0]));
  const send = (
    handler: ReturnType<typeof make>['handler'],
    signatures: Record<string, string>,
    text = body,
  ) => inject(handler, { headers: { ...segmentHeaders(), ...signatures }, body: text });

  test('X-Signature of the first event only, on three events: 401 SEG_SIGNATURE_PARTIAL, nothing stored', async () => {
    const { handler, stored } = make();
    const res = await send(handler, { 'x-signature': firstOnly });
    assert.equal(res.status, 401, res.body);
    assert.equal(res.json().code, 'SEG_SIGNATURE_PARTIAL');
    assert.equal(stored.length, 0);
  });

  test('with signatureLegacyBatch, the same request is accepted', async () => {
    const { handler, stored } = make(true);
    const res = await send(handler, { 'x-signature': firstOnly });
    assert.equal(res.status, 200, res.body);
    assert.equal(stored.length, 3);
  });

  test('X-Segment-Signature or X-Signature of the whole body is accepted, array or object', async () => {
    const { handler, stored } = make();
    for (const header of ['x-segment-signature', 'x-signature']) {
      // Fresh messageIds each time: a repeated one would be answered as a duplicate, not stored.
      const many = JSON.stringify([trackEvent(), trackEvent(), trackEvent()]);
      const one = JSON.stringify(trackEvent());
      assert.equal((await send(handler, { [header]: sign('shared', many) }, many)).status, 200, header);
      assert.equal((await send(handler, { [header]: sign('shared', one) }, one)).status, 200, header);
    }
    assert.equal(stored.length, 8);
  });

  test('a framework-parsed body is signed as JSON.stringify of its value', async () => {
    const { handler, stored } = make();
    const res = await inject(handler, {
      headers: { ...segmentHeaders(), 'x-segment-signature': sign('shared', body) },
      parsedBody: events,
    });
    assert.equal(res.status, 200, res.body);
    assert.equal(stored.length, 3);
  });

  test('a one-event array signed on its event is accepted: the signature covers all that is stored', async () => {
    const { handler, stored } = make();
    const single = [trackEvent()];
    const res = await send(
      handler,
      { 'x-signature': sign('shared', JSON.stringify(single[0])) },
      JSON.stringify(single),
    );
    assert.equal(res.status, 200, res.body);
    assert.equal(stored.length, 1);
  });

  test('both headers: either one covering the whole body suffices', async () => {
    const { handler } = make();
    const whole = sign('shared', body);
    assert.equal(
      (await send(handler, { 'x-signature': firstOnly, 'x-segment-signature': whole })).status,
      200,
    );
    assert.equal((await send(handler, { 'x-signature': whole, 'x-segment-signature': 'bad' })).status, 200);
  });

  test('neither header: SEG_SIGNATURE_MISSING; no match: SEG_SIGNATURE_INVALID', async () => {
    const { handler, stored } = make(true);
    const cases: Array<[Record<string, string>, string]> = [
      [{}, 'SEG_SIGNATURE_MISSING'],
      [{ 'x-segment-signature': '' }, 'SEG_SIGNATURE_MISSING'],
      [{ 'x-segment-signature': sign('other', body) }, 'SEG_SIGNATURE_INVALID'],
      // X-Segment-Signature always signs the whole body: the first event alone is no match.
      [{ 'x-segment-signature': firstOnly }, 'SEG_SIGNATURE_INVALID'],
      [{ 'x-signature': sign('shared', JSON.stringify(events[1])) }, 'SEG_SIGNATURE_INVALID'],
      [{ 'x-signature': 'bad', 'x-segment-signature': 'bad' }, 'SEG_SIGNATURE_INVALID'],
    ];
    for (const [headers, code] of cases) {
      const res = await send(handler, headers);
      assert.equal(res.status, 401, JSON.stringify(headers));
      assert.equal(res.json().code, code, JSON.stringify(headers));
    }
    assert.equal(stored.length, 0);
  });
});
