import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ERRORS } from '../src/errors.ts';
import {
  type AuthDecision,
  createHandler,
  ForbiddenError,
  type HandlerOptions,
  silentLogger,
  UnauthorizedError,
} from '../src/index.ts';
import { endpoint, recording, type Seen } from './handler-harness.ts';
import { API_KEY, basic, encodeSettings, segmentHeaders, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';

// What the headers say of the sender: the API key in Basic auth (listed keys, a custom authenticator,
// keys limited to some types), and the partner's settings in X-Segment-Settings.

describe('auth', () => {
  const send = (authorization: string | undefined, options: Partial<HandlerOptions> = {}) =>
    inject(endpoint(options), {
      headers: { ...segmentHeaders(), authorization },
      body: trackEvent(),
    });

  test('the key as username with an empty password is accepted, as Segment sends it', async () => {
    assert.equal((await send(basic(API_KEY))).status, 200);
  });

  test('a lower-case scheme and a missing colon are tolerated', async () => {
    assert.equal((await send(`basic ${Buffer.from(`${API_KEY}:`).toString('base64')}`)).status, 200);
    assert.equal((await send(basic(API_KEY, false))).status, 200);
  });

  test('no header, another scheme, junk and unknown keys are 401 with WWW-Authenticate', async () => {
    const cases: Array<[string | undefined, string]> = [
      [undefined, 'SEG_AUTH_MISSING'],
      [`Bearer ${API_KEY}`, 'SEG_AUTH_MALFORMED'],
      ['Basic %%%not-base64', 'SEG_AUTH_MALFORMED'],
      [basic(''), 'SEG_AUTH_MISSING'],
      [basic('wrong-key'), 'SEG_AUTH_UNKNOWN'],
      [basic(`${API_KEY}x`), 'SEG_AUTH_UNKNOWN'],
    ];
    for (const [header, code] of cases) {
      const res = await send(header);
      assert.equal(res.status, 401, String(header));
      assert.equal(res.json().code, code, String(header));
      assert.match(res.headers['www-authenticate'] ?? '', /^Basic realm="segment-endpoint"/);
    }
  });

  test('credentials that are not UTF-8 are malformed, not a key whose bad bytes match any others', async () => {
    // Decoded leniently, "k1" and the byte e9 (Latin-1 "k1é") became "k1\ufffd", as did "k1" and e8 or
    // ff: a key holding U+FFFD let any sender in whose key had any bad byte in its place.
    const latin1 = (bytes: number[]) => `Basic ${Buffer.from(bytes).toString('base64')}`;
    for (const bytes of [
      [0x6b, 0x31, 0xe9],
      [0x6b, 0x31, 0xff, 0x3a],
    ]) {
      const res = await send(latin1(bytes), { apiKeys: ['k1\ufffd'] });
      assert.equal(res.status, 401);
      assert.equal(res.json().code, 'SEG_AUTH_MALFORMED');
    }
    assert.equal((await send(basic('k1\ufffd'), { apiKeys: ['k1\ufffd'] })).status, 200);
  });

  test('a custom authenticator decides: allow, unknown, forbidden, sync or async', async () => {
    const authenticate = async (key: string) =>
      key === 'ok' ? 'allow' : key === 'blocked' ? 'forbidden' : 'unknown';
    const handler = endpoint({ apiKeys: undefined, authenticate });
    const as = (key: string) => inject(handler, { headers: segmentHeaders(key), body: trackEvent() });
    assert.equal((await as('ok')).status, 200);
    assert.equal((await as('nope')).status, 401);
    const forbidden = await as('blocked');
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.json().code, 'SEG_FORBIDDEN');
    const sync = endpoint({ apiKeys: undefined, authenticate: (key) => key === 'ok' });
    assert.equal((await inject(sync, { headers: segmentHeaders('ok'), body: trackEvent() })).status, 200);
    assert.equal((await inject(sync, { headers: segmentHeaders('no'), body: trackEvent() })).status, 401);
  });

  test('an authenticator answer outside its contract is a 500 logged, never a pass', async () => {
    // A missing return, a typo'd string, a number, null, an array: a bug in the partner's code, whose
    // events are retried (500) rather than accepted by anyone or refused for good (401).
    const answers: Record<string, unknown> = {
      missing: undefined,
      deny: 'deny',
      Allow: 'Allow',
      zero: 0,
      one: 1,
      empty: '',
      nothing: null,
      list: ['track'],
      types: { allow: 'track' },
      misspelt: { allow: ['Track'] }, // every event a 403 that Segment never retries
      // A misspelt key inherited from the partner's own prototype takes effect as an own one would.
      inherited: Object.create({ alow: ['track'] }),
    };
    for (const wrap of [(x: unknown) => x, (x: unknown) => Promise.resolve(x)]) {
      const logged: object[] = [];
      const handler = createHandler({
        authenticate: (key) => wrap(answers[key]) as AuthDecision,
        handlers: recording(),
        log: { ...silentLogger, error: (obj: object) => logged.push(obj) },
      });
      for (const key of Object.keys(answers)) {
        const res = await inject(handler, { headers: segmentHeaders(key), body: trackEvent() });
        assert.equal(res.status, 500, key);
        assert.equal(res.json().code, 'SEG_INTERNAL', key);
      }
      assert.equal(logged.length, Object.keys(answers).length, 'each logged for the operator');
    }
  });

  test('an authenticator can answer with its own message by throwing', async () => {
    const handler = endpoint({
      apiKeys: undefined,
      authenticate: (key) => {
        if (key === 'old') throw new UnauthorizedError('API token expired');
        throw new ForbiddenError('Plan does not include this destination');
      },
    });
    const expired = await inject(handler, { headers: segmentHeaders('old'), body: trackEvent() });
    assert.equal(expired.status, 401);
    assert.equal(expired.json().message, 'API token expired');
    const forbidden = await inject(handler, { headers: segmentHeaders('x'), body: trackEvent() });
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.json().message, 'Plan does not include this destination');
  });

  test('a key limited to some types gets 403 for another type', async () => {
    const handler = endpoint({ apiKeys: [{ key: 'tracker', types: ['track'] }] });
    const headers = segmentHeaders('tracker');
    assert.equal((await inject(handler, { headers, body: trackEvent() })).status, 200);
    const res = await inject(handler, { headers, body: { type: 'identify', userId: 'u1' } });
    assert.equal(res.status, 403);
    assert.equal(res.json().code, 'SEG_TYPE_FORBIDDEN');
    assert.match(res.json().message ?? '', /identify/);
  });
});

describe('settings', () => {
  test('X-Segment-Settings reaches the handler decoded; absent is {}', async () => {
    const seen: Seen[] = [];
    const handler = endpoint({}, seen);
    const headers = {
      ...segmentHeaders(),
      'x-segment-settings': encodeSettings({ region: 'eu', apiVersion: 2 }),
    };
    assert.equal((await inject(handler, { headers, body: trackEvent() })).status, 200);
    assert.equal((await inject(handler, { body: trackEvent() })).status, 200);
    assert.deepEqual(seen[0]?.ctx.settings, { region: 'eu', apiVersion: 2 });
    assert.deepEqual(seen[1]?.ctx.settings, {});
  });

  test('a settings header that is not base64 of a UTF-8 JSON object is 400, and the message says which it is not', async () => {
    // Every fault was told the same sentence, while the same faults in a body are each named: Segment
    // shows the message to the customer, who then looks in the wrong place.
    const base64 = (text: string) => Buffer.from(text).toString('base64');
    const cases: Array<[string, RegExp]> = [
      ['not base64!', /: it is not base64$/],
      [base64('[1,2]'), /: it decodes to an array, not an object$/],
      [base64('"x"'), /: it decodes to a string, not an object$/],
      [base64('{"token":"sk_live_1" bad}'), /: it decodes to text that is not valid JSON$/],
      [
        Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]).toString('base64'),
        /: its bytes are not UTF-8$/,
      ],
      [base64('{"__proto__":{"x":1}}'), /: it holds a forbidden key: __proto__$/],
      [base64(`{"a":${'['.repeat(70)}${']'.repeat(70)}}`), /: it nests deeper than 64 levels$/],
      [base64('{"a":1e400}'), /: it holds a number beyond the range of a double at a$/],
      // Node joins a header sent twice with ", ": no base64 has a comma.
      [`${base64('{}')}, ${base64('{}')}`, /^X-Segment-Settings is sent more than once: send it once$/],
      // JSON sent as it is, not in base64: a comma of its own, not two headers.
      ['{"a":1,"b":2}', /: it is not base64$/],
    ];
    for (const [value, message] of cases) {
      const res = await inject(endpoint(), {
        headers: { ...segmentHeaders(), 'x-segment-settings': value },
        body: trackEvent(),
      });
      assert.equal(res.status, 400, value);
      const { code, message: said } = res.json() as { code: string; message: string };
      assert.equal(code, 'SEG_SETTINGS_INVALID');
      assert.match(said, message);
      if (!message.source.startsWith('^'))
        assert.ok(said.startsWith(ERRORS.SEG_SETTINGS_INVALID.message), said);
    }
  });
});
