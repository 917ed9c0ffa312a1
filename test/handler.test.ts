import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { describe, test } from 'node:test';
import {
  type AuthDecision,
  type Context,
  createHandler,
  EventNotSupported,
  ForbiddenError,
  type HandlerOptions,
  type Handlers,
  InvalidEventPayload,
  RetryError,
  silentLogger,
  UnauthorizedError,
  ValidationError,
} from '../src/index.ts';
import {
  API_KEY,
  basic,
  countdown,
  encodeSettings,
  gate,
  inject,
  segmentHeaders,
  trackEvent,
} from './helpers.ts';

interface Seen {
  type: string;
  event: Record<string, unknown>;
  ctx: Context;
}

/** A handler for every type that records what it was given. */
function recording(seen: Seen[] = []): Handlers {
  const record = (type: string) => (event: unknown, ctx: Context) => {
    seen.push({ type, event: event as Record<string, unknown>, ctx });
  };
  return {
    identify: record('identify'),
    track: record('track'),
    page: record('page'),
    screen: record('screen'),
    group: record('group'),
    alias: record('alias'),
    delete: record('delete'),
  };
}

function endpoint(options: Partial<HandlerOptions> = {}, seen: Seen[] = []) {
  return createHandler({ apiKeys: [API_KEY], handlers: recording(seen), log: silentLogger, ...options });
}

describe('route', () => {
  test('only the configured path takes events: another path is 404', async () => {
    const res = await inject(endpoint({ path: '/segment' }), { url: '/', body: trackEvent() });
    assert.equal(res.status, 404);
    assert.equal(res.json().code, 'SEG_NOT_FOUND');
    assert.match(res.headers['content-type'] ?? '', /^application\/json/);
    const ok = await inject(endpoint({ path: '/segment' }), { url: '/segment?x=1', body: trackEvent() });
    assert.equal(ok.status, 200);
  });

  test('GET and HEAD on the health path answer 200 without auth', async () => {
    const handler = endpoint();
    const get = await inject(handler, { method: 'GET', url: '/health', headers: {} });
    assert.equal(get.status, 200);
    assert.deepEqual(JSON.parse(get.body), { status: 'ok' });
    const head = await inject(handler, { method: 'HEAD', url: '/health', headers: {} });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  test('health answers 503 draining once the handler drains, and new events get 503 with Connection: close', async () => {
    const handler = endpoint();
    handler.drain();
    assert.equal(handler.draining, true);
    const health = await inject(handler, { method: 'GET', url: '/health', headers: {} });
    assert.equal(health.status, 503);
    assert.deepEqual(JSON.parse(health.body), { status: 'draining' });
    const event = await inject(handler, { body: trackEvent() });
    assert.equal(event.status, 503);
    assert.equal(event.json().code, 'SEG_DRAINING');
    assert.equal(event.headers.connection, 'close');
  });

  test('other methods on the event path are 405 with Allow: POST, and keep the connection', async () => {
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
      const res = await inject(endpoint(), { method, noLength: true });
      assert.equal(res.status, 405, method);
      assert.equal(res.headers.allow, 'POST');
      assert.notEqual(res.headers.connection, 'close');
      assert.equal(res.json().code, 'SEG_METHOD_NOT_ALLOWED');
    }
    const health = await inject(endpoint(), { method: 'POST', url: '/health', headers: {} });
    assert.equal(health.status, 405);
    assert.equal(health.headers.allow, 'GET, HEAD');
  });
});

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

  test('a settings header that is not base64 of a JSON object is 400', async () => {
    for (const value of [
      'not base64!',
      Buffer.from('[1,2]').toString('base64'),
      Buffer.from('{bad').toString('base64'),
    ]) {
      const res = await inject(endpoint(), {
        headers: { ...segmentHeaders(), 'x-segment-settings': value },
        body: trackEvent(),
      });
      assert.equal(res.status, 400, value);
      assert.equal(res.json().code, 'SEG_SETTINGS_INVALID');
    }
  });
});

describe('body', () => {
  const limit = 1024;
  const padded = (size: number) => {
    const base = JSON.stringify(trackEvent({ messageId: 'm1', pad: '' }));
    return JSON.stringify(trackEvent({ messageId: 'm1', pad: 'x'.repeat(size - base.length) }));
  };

  test('a body at the limit passes, one byte over is 413 (declared length, not read)', async () => {
    const handler = endpoint({ maxBodyBytes: limit });
    assert.equal(Buffer.byteLength(padded(limit)), limit);
    assert.equal((await inject(handler, { body: padded(limit) })).status, 200);
    const over = await inject(handler, { body: padded(limit + 1) });
    assert.equal(over.status, 413);
    assert.equal(over.json().code, 'SEG_BODY_TOO_LARGE');
    assert.equal(over.headers.connection, 'close');
  });

  test('a chunked body is counted the same way: at the limit passes, one byte over is 413', async () => {
    const handler = endpoint({ maxBodyBytes: limit });
    const split = (text: string) => [text.slice(0, 100), text.slice(100, 700), text.slice(700)];
    assert.equal((await inject(handler, { chunks: split(padded(limit)) })).status, 200);
    const over = await inject(handler, { chunks: split(padded(limit + 1)) });
    assert.equal(over.status, 413);
    assert.equal(over.json().code, 'SEG_BODY_TOO_LARGE');
  });

  test('neither Content-Length nor chunked is 411', async () => {
    const res = await inject(endpoint(), { body: trackEvent(), noLength: true });
    assert.equal(res.status, 411);
    assert.equal(res.json().code, 'SEG_LENGTH_REQUIRED');
  });

  test('a transfer coding before chunked is 501 (RFC 9112 §6.1); chunked not last is 400 and closes', async () => {
    for (const te of ['gzip, chunked', 'deflate, chunked']) {
      const res = await inject(endpoint(), {
        headers: { ...segmentHeaders(), 'transfer-encoding': te },
        body: '{}',
      });
      assert.equal(res.status, 501, te);
      assert.equal(res.json().code, 'SEG_TRANSFER_CODING');
    }
    // Where such a body ends cannot be known (RFC 9112 §6.3): the connection cannot be trusted after it.
    for (const te of ['gzip', 'deflate', 'chunked, gzip', 'xchunked', 'chunked;q=1']) {
      const res = await inject(endpoint(), {
        headers: { ...segmentHeaders(), 'transfer-encoding': te },
        body: '{}',
      });
      assert.equal(res.status, 400, te);
      assert.equal(res.json().code, 'SEG_BAD_REQUEST');
      assert.equal(res.headers.connection, 'close', te);
    }
  });

  test('a malformed Content-Length is 400', async () => {
    const res = await inject(endpoint(), {
      headers: { ...segmentHeaders(), 'content-length': '12abc' },
      body: '{}',
    });
    assert.equal(res.status, 400);
    assert.equal(res.json().code, 'SEG_LENGTH_INVALID');
  });

  test('a body that stalls past the timeout is 408 and the connection is closed', async () => {
    const res = await inject(endpoint({ bodyTimeoutMs: 50 }), {
      headers: { ...segmentHeaders(), 'content-length': '100' },
      chunks: ['{"type":'],
      stall: true,
    });
    assert.equal(res.status, 408);
    assert.equal(res.json().code, 'SEG_BODY_TIMEOUT');
    assert.equal(res.headers.connection, 'close');
  });

  test('a request destroyed after its last byte but before its end: settled at once, not at the deadline', {
    timeout: 10_000, // a guard only: the body timeout is a minute
  }, async () => {
    const seen: Seen[] = [];
    const handler = endpoint({ bodyTimeoutMs: 60_000 }, seen);
    const body = JSON.stringify(trackEvent());
    await inject(
      (req, res) => {
        handler(req, res);
        // Every byte arrived (Node sets `complete`), then the connection went before 'end' was emitted.
        req.once('data', () => {
          req.complete = true;
          req.destroy();
        });
      },
      {
        headers: { ...segmentHeaders(), 'content-length': String(body.length) },
        chunks: [body],
        stall: true,
      },
    ).catch(() => {});
    await handler.idle();
    assert.equal(handler.inFlight, 0);
    assert.equal(seen.length, 0);
  });

  test('a client that goes away mid-body: its event is not processed, and nothing waits on it', {
    timeout: 10_000, // a guard only: the body timeout is a minute, so an abort not seen would hang here
  }, async () => {
    const seen: Seen[] = [];
    const handler = endpoint({ bodyTimeoutMs: 60_000 }, seen);
    const res = await inject(handler, {
      headers: { ...segmentHeaders(), 'content-length': '100' },
      chunks: ['{"type":'],
      abort: true,
    });
    assert.equal(res.status, 0);
    await handler.idle();
    assert.equal(handler.inFlight, 0);
    assert.equal(seen.length, 0);
  });

  test('a non-JSON Content-Type is 415; JSON with parameters and +json are accepted', async () => {
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/jsonx',
      'multipart/form-data',
    ]) {
      const res = await inject(endpoint(), {
        headers: { ...segmentHeaders(), 'content-type': type },
        body: trackEvent(),
      });
      assert.equal(res.status, 415, type);
      assert.equal(res.json().code, 'SEG_UNSUPPORTED_MEDIA_TYPE');
    }
    for (const type of [
      'application/json; charset=utf-8',
      'APPLICATION/JSON',
      'application/vnd.segment+json',
      undefined,
    ]) {
      const res = await inject(endpoint(), {
        headers: { ...segmentHeaders(), 'content-type': type },
        body: trackEvent(),
      });
      assert.equal(res.status, 200, String(type));
    }
  });

  test('invalid UTF-8 is 400; a UTF-8 byte order mark is tolerated', async () => {
    const bad = Buffer.concat([
      Buffer.from('{"type":"track","event":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('","userId":"u"}'),
    ]);
    const res = await inject(endpoint(), { body: bad });
    assert.equal(res.status, 400);
    assert.equal(res.json().code, 'SEG_INVALID_UTF8');
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(trackEvent()))]);
    assert.equal((await inject(endpoint(), { body: bom })).status, 200);
  });
});

describe('parse', () => {
  test('bad JSON, and JSON that is not an object, are 400', async () => {
    const cases: Array<[string, string]> = [
      ['{"type":', 'SEG_INVALID_JSON'],
      ['', 'SEG_INVALID_JSON'],
      ['[]', 'SEG_INVALID_EVENT'],
      ['"track"', 'SEG_NOT_OBJECT'],
      ['null', 'SEG_NOT_OBJECT'],
      ['42', 'SEG_NOT_OBJECT'],
    ];
    for (const [body, code] of cases) {
      const res = await inject(endpoint(), {
        body,
        headers: { ...segmentHeaders(), 'content-length': String(Buffer.byteLength(body)) },
      });
      assert.equal(res.status, 400, body);
      assert.equal(res.json().code, code, body);
    }
  });

  test('__proto__ and constructor.prototype keys are refused and never reach a prototype', async () => {
    const seen: Seen[] = [];
    const bodies = [
      '{"type":"track","event":"x","userId":"u","__proto__":{"polluted":true}}',
      '{"type":"track","event":"x","userId":"u","properties":{"constructor":{"prototype":{"polluted":true}}}}',
      // JSON.parse decodes escaped letters: these are the same keys in disguise.
      '{"type":"track","user_id":"u","\\u005f_proto__":{"event":"Injected","polluted":true}}',
      '{"type":"track","event":"x","userId":"u","\\u0063onstructor":{"prototype":{"polluted":true}}}',
    ];
    for (const body of bodies) {
      const res = await inject(endpoint({}, seen), { body });
      assert.equal(res.status, 400);
      assert.equal(res.json().code, 'SEG_FORBIDDEN_KEY');
    }
    assert.equal(seen.length, 0);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe('normalise and validate', () => {
  test('spec fields in any casing reach the handler canonical; traits keep their keys; ctx.original is as sent', async () => {
    const seen: Seen[] = [];
    const sent = {
      Type: 'Identify',
      User_Id: 'u1',
      TRAITS: { First_Name: 'Ada', email: 'a@b.c' },
      MessageID: 'm1',
    };
    const res = await inject(endpoint({}, seen), { body: sent });
    assert.equal(res.status, 200);
    const [first] = seen;
    assert.equal(first?.type, 'identify');
    assert.equal(first?.event.type, 'identify');
    assert.equal(first?.event.userId, 'u1');
    assert.equal(first?.event.messageId, 'm1');
    assert.deepEqual(first?.event.traits, { First_Name: 'Ada', email: 'a@b.c' });
    assert.deepEqual(first?.ctx.original, sent);
  });

  test('"type": "Track" is a track', async () => {
    const seen: Seen[] = [];
    await inject(endpoint({}, seen), { body: trackEvent({ type: 'TRACK' }) });
    assert.equal(seen[0]?.type, 'track');
  });

  test('a missing or non-string type is 400', async () => {
    for (const body of [
      { event: 'x', userId: 'u' },
      { type: 7, userId: 'u' },
      { type: '', userId: 'u' },
    ]) {
      const res = await inject(endpoint(), { body });
      assert.equal(res.status, 400);
      assert.equal(res.json().code, 'SEG_TYPE_MISSING');
    }
  });

  test('a type not in the spec is 501, and so is a spec type without a handler', async () => {
    for (const type of ['purchase', 'constructor', '__proto__', 'toString']) {
      const res = await inject(endpoint(), { body: { type, userId: 'u' } });
      assert.equal(res.status, 501, type);
      assert.equal(res.json().code, 'SEG_TYPE_UNSUPPORTED');
    }
    const trackOnly = createHandler({ apiKeys: [API_KEY], handlers: { track: () => {} }, log: silentLogger });
    const res = await inject(trackOnly, { body: { type: 'page', userId: 'u', name: 'Home' } });
    assert.equal(res.status, 501);
    assert.match(res.json().message ?? '', /page/);
  });

  test('required fields: messages name the type and the field', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ type: 'track', userId: 'u' }, /^track: "event"/],
      [{ type: 'track', event: 'x' }, /^track: "userId" or "anonymousId"/],
      [{ type: 'identify' }, /^identify: "userId" or "anonymousId"/],
      [{ type: 'page', name: 'Home' }, /^page: "userId" or "anonymousId"/],
      [{ type: 'screen', name: 'Home' }, /^screen: "userId" or "anonymousId"/],
      [{ type: 'group', userId: 'u' }, /^group: "groupId"/],
      [{ type: 'alias', userId: 'u' }, /^alias: "previousId"/],
      [{ type: 'alias', previousId: 'p' }, /^alias: "userId"/],
      [{ type: 'delete', anonymousId: 'a' }, /^delete: "userId"/],
    ];
    for (const [body, message] of cases) {
      const res = await inject(endpoint(), { body });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.json().code, 'SEG_INVALID_EVENT');
      assert.match(res.json().message ?? '', message);
    }
  });

  test('the leniency real payloads need: null/[] context, string version, non-ISO timestamps, extra keys', async () => {
    const bodies = [
      { type: 'delete', userId: 'u1', context: [], integrations: null },
      trackEvent({
        version: '1.1',
        originalTimestamp: 'Tue Nov 26 2026',
        context: null,
        _metadata: { x: 1 },
        extra: 1,
      }),
      { type: 'identify', anonymousId: 'a1', traits: [], version: 2 },
      { type: 'group', userId: 'u', groupId: 'g', traits: { name: 'Acme' } },
      { type: 'page', anonymousId: 'a', name: null, properties: { path: '/' } },
      { type: 'screen', userId: 7, name: 'Home' },
      { type: 'alias', previousId: 'anon', userId: 'u1' },
    ];
    for (const body of bodies) {
      const res = await inject(endpoint(), { body });
      assert.equal(res.status, 200, `${JSON.stringify(body)} → ${res.body}`);
    }
  });
});

describe('dispatch', () => {
  const throwing = (err: unknown, log = silentLogger) =>
    createHandler({
      apiKeys: [API_KEY],
      log,
      handlers: {
        track: () => {
          throw err;
        },
      },
    });

  test('returning nothing is 200 with an empty body; { status: 202 } is 202', async () => {
    const ok = await inject(endpoint(), { body: trackEvent() });
    assert.equal(ok.status, 200);
    assert.equal(ok.body, '');
    const later = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      handlers: { track: async () => ({ status: 202 }) },
    });
    assert.equal((await inject(later, { body: trackEvent() })).status, 202);
  });

  test('ctx carries the api key, headers, a signal and the receive time', async () => {
    const seen: Seen[] = [];
    await inject(endpoint({}, seen), { body: trackEvent() });
    const ctx = seen[0]?.ctx;
    assert.equal(ctx?.apiKey, API_KEY);
    assert.equal(ctx?.headers['user-agent'], 'Segment.io/1.0');
    assert.equal(ctx?.signal.aborted, false);
    assert.ok(ctx?.receivedAt instanceof Date);
  });

  test('the Segment Functions error classes map to their statuses', async () => {
    const cases: Array<[Error, number]> = [
      [new ValidationError('Missing email address'), 400],
      [new InvalidEventPayload('Bad payload'), 400],
      [new EventNotSupported('No tracks here'), 501],
      [new RetryError('Downstream is down'), 503],
      [new UnauthorizedError('API token expired'), 401],
      [new ForbiddenError('Not on your plan'), 403],
    ];
    for (const [err, status] of cases) {
      const res = await inject(throwing(err), { body: trackEvent() });
      assert.equal(res.status, status, err.name);
      assert.equal(res.json().message, err.message);
    }
  });

  test('a thrown error with a numeric status or statusCode keeps its status', async () => {
    const teapot = Object.assign(new Error('Quota exceeded for this workspace'), { status: 429 });
    const res = await inject(throwing(teapot), { body: trackEvent() });
    assert.equal(res.status, 429);
    assert.equal(res.json().message, 'Quota exceeded for this workspace');
    const gone = Object.assign(new Error('Gone'), { statusCode: 410 });
    assert.equal((await inject(throwing(gone), { body: trackEvent() })).status, 410);
  });

  test('anything else is a 500 with a generic message; the cause goes to the log only', async () => {
    const logged: object[] = [];
    const log = { ...silentLogger, error: (obj: object) => logged.push(obj) };
    const secret = new Error('connect ECONNREFUSED 10.0.0.5:5432 at /srv/app/db.js');
    const res = await inject(throwing(secret, log), { body: trackEvent() });
    assert.equal(res.status, 500);
    assert.equal(res.json().code, 'SEG_INTERNAL');
    assert.doesNotMatch(res.body, /ECONNREFUSED|\/srv|db\.js|stack/);
    assert.equal(logged.length, 1);
    assert.equal((logged[0] as { err: Error }).err, secret);
    assert.doesNotMatch(JSON.stringify(logged[0]), new RegExp(API_KEY));
    const upstream = Object.assign(new Error('pg: relation "events" does not exist'), {
      status: 502,
      code: '42P01',
    });
    const res502 = await inject(throwing(upstream, log), { body: trackEvent() });
    assert.equal(res502.status, 502);
    assert.doesNotMatch(res502.body, /relation|42P01/);
  });

  test('a handler still running after the timeout is answered 503 and its signal aborted', async () => {
    let signal: AbortSignal | undefined;
    const slow = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      handlerTimeoutMs: 30,
      handlers: {
        track: (_event, ctx) => {
          signal = ctx.signal;
          return new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
        },
      },
    });
    const res = await inject(slow, { body: trackEvent() });
    assert.equal(res.status, 503);
    assert.equal(res.json().code, 'SEG_HANDLER_TIMEOUT');
    assert.equal(signal?.aborted, true);
  });

  test('inFlight counts running events and idle() resolves when they finish', async () => {
    const held = gate();
    const entered = countdown(1);
    const track = () => {
      entered.hit();
      return held.opened;
    };
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers: { track } });
    const pending = inject(handler, { body: trackEvent() });
    await entered.reached;
    assert.equal(handler.inFlight, 1);
    let idle = false;
    const waiting = handler.idle().then(() => {
      idle = true;
    });
    // The event is held: however long we wait, idle() cannot have resolved; a turn of the loop shows it.
    await new Promise((r) => setImmediate(r));
    assert.equal(idle, false);
    held.open();
    assert.equal((await pending).status, 200);
    await waiting;
    assert.equal(handler.inFlight, 0);
  });

  test('a success is written at the end of its turn of the loop, its event in flight until then', async () => {
    let res: ServerResponse | undefined;
    const seenInTurn: Array<[number, boolean | undefined]> = [];
    let writtenWhenIdle: boolean | undefined;
    const track = () => {
      // Still in the turn that took the event: its answer is decided, not yet written.
      queueMicrotask(() => {
        seenInTurn.push([handler.inFlight, res?.writableEnded]);
        handler.idle().then(() => {
          writtenWhenIdle = res?.writableEnded;
        });
      });
    };
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers: { track } });
    const answer = await inject(
      (req, r) => {
        res = r;
        handler(req, r);
      },
      { body: trackEvent() },
    );
    assert.equal(answer.status, 200);
    assert.deepEqual(seenInTurn, [[1, false]]);
    assert.equal(writtenWhenIdle, true, 'idle() resolves once the answer is written');
  });
});

describe('mounted behind a framework that parsed the body', () => {
  test('req.body as an object is used as is, and still guarded against __proto__', async () => {
    const seen: Seen[] = [];
    const handler = endpoint({}, seen);
    const ok = await inject(handler, { parsedBody: trackEvent(), headers: segmentHeaders() });
    assert.equal(ok.status, 200);
    assert.equal(seen.length, 1);
    const poisoned = JSON.parse('{"type":"track","event":"x","userId":"u","__proto__":{"x":1}}');
    const bad = await inject(handler, { parsedBody: poisoned, headers: segmentHeaders() });
    assert.equal(bad.status, 400);
    assert.equal(bad.json().code, 'SEG_FORBIDDEN_KEY');
  });

  test('req.body as a string or Buffer is parsed and held to the size limit', async () => {
    const handler = endpoint({ maxBodyBytes: 400 });
    assert.equal((await inject(handler, { parsedBody: JSON.stringify(trackEvent()) })).status, 200);
    assert.equal(
      (await inject(handler, { parsedBody: Buffer.from(JSON.stringify(trackEvent())) })).status,
      200,
    );
    const big = await inject(handler, { parsedBody: JSON.stringify(trackEvent({ pad: 'x'.repeat(400) })) });
    assert.equal(big.status, 413);
  });

  test('req.body as bytes that are not UTF-8 is refused, as a body read here is', async () => {
    const text = JSON.stringify(trackEvent({ properties: { name: 'Zoë' } }));
    const latin1 = Buffer.from(text, 'latin1'); // ë as the single byte 0xeb
    const res = await inject(endpoint(), { parsedBody: latin1 });
    assert.equal(res.status, 400);
    assert.equal(res.json().code, 'SEG_INVALID_UTF8');
    assert.equal((await inject(endpoint(), { parsedBody: Buffer.from(text) })).status, 200);
  });

  test("a parsed body is held to the Tracking API's limits: 32 KiB an event, 500 KiB a batch", async () => {
    const handler = endpoint({ maxBodyBytes: 1024 * 1024 });
    const event = (bytes: number) => trackEvent({ pad: 'x'.repeat(bytes) });
    const oneTooBig = await inject(handler, { url: '/v1/track', parsedBody: event(33 * 1024) });
    assert.equal(oneTooBig.status, 413);
    assert.equal(oneTooBig.json().code, 'SEG_BODY_TOO_LARGE');
    assert.equal((await inject(handler, { url: '/v1/track', parsedBody: event(30 * 1024) })).status, 200);
    const batch = { batch: Array.from({ length: 20 }, () => event(26 * 1024)) };
    const tooBig = await inject(handler, { url: '/v1/batch', parsedBody: batch });
    assert.equal(tooBig.status, 413);
    assert.equal(tooBig.json().code, 'SEG_BODY_TOO_LARGE');
  });
});
