import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createHandler, NdjsonStore, silentLogger, storeHandlers } from '../src/index.ts';
import { endpoint, type Seen } from './handler-harness.ts';
import { API_KEY, segmentHeaders, tempDirs, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';
import { ROOT, spawnClean, TSX } from './helpers-spawn.ts';

const storeDir = tempDirs('parse-store');

// From the body to an event: JSON parsed with __proto__ refused, spec fields normalised, each type
// validated; and a body a framework already parsed (req.body) held to the same rules.

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
    // Named as sent, alone and in a batch: a lower-cased "purchase" is not what the sender looks for.
    const alone = await inject(endpoint(), { body: { type: 'Purchase', userId: 'u' } });
    assert.equal(alone.json().message, '"Purchase" is not a Segment event type');
    const batch = await inject(endpoint(), {
      url: '/v1/batch',
      body: {
        batch: [
          { type: 'track', event: 'E', userId: 'u' },
          { Type: 'PURCHASE', userId: 'u' },
        ],
      },
    });
    assert.match(batch.json().message ?? '', /#1: 501 "PURCHASE" is not a Segment event type/);
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

test("traits or properties sent as [] (PHP's empty map) reach the handler as {}", async () => {
  // Typed `[] | Record<string, unknown>`, `event.traits?.email` did not compile, and traits forwarded as
  // they came gave a CRM a list where it takes an object.
  const got: Array<[unknown, unknown]> = [];
  const handler = createHandler({
    apiKeys: [API_KEY],
    log: silentLogger,
    handlers: {
      identify: (event, ctx) => {
        got.push([event.traits, ctx.original.traits]);
        return event.traits?.email === undefined ? undefined : { status: 400 };
      },
      track: (event, ctx) => {
        got.push([event.properties, ctx.original.properties ?? ctx.original.Properties]);
      },
    },
  });
  const bodies = [
    { type: 'identify', userId: 'u1', traits: [] },
    trackEvent({ properties: [] }),
    { type: 'track', event: 'Signed Up', userId: 'u1', Properties: [] }, // renamed, then made a map
  ];
  for (const body of bodies) assert.equal((await inject(handler, { body })).status, 200);
  assert.deepEqual(got, [
    [{}, []],
    [{}, []],
    [{}, []],
  ]);
  // A list with items is still no map: refused, as before.
  const listed = await inject(handler, { body: { type: 'identify', userId: 'u1', traits: ['a'] } });
  assert.deepEqual([listed.status, listed.json().code], [400, 'SEG_INVALID_EVENT']);
});

test('the default store keeps traits sent as [] as they were sent', async () => {
  const store = await NdjsonStore.open(storeDir());
  const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers: storeHandlers(store) });
  const res = await inject(handler, { body: { type: 'identify', userId: 'u1', traits: [] } });
  assert.equal(res.status, 200);
  await store.close();
  const [file] = readdirSync(store.dir);
  assert.match(
    readFileSync(join(store.dir, file as string), 'utf8'),
    /"event":\{"type":"identify","userId":"u1","traits":\[\]\}/,
  );
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

  test('req.body as a string or Buffer that starts with a UTF-8 BOM: the BOM is dropped, as a body read here', async () => {
    const text = `\ufeff${JSON.stringify(trackEvent())}`;
    for (const parsedBody of [text, Buffer.from(text)]) {
      const res = await inject(endpoint(), { parsedBody });
      assert.equal(res.status, 200, res.body);
    }
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

test('a host whose Object.prototype was given an enumerable object (a pollution elsewhere in its app): events still answered, nothing inherited taken as theirs', async () => {
  // The walk for numbers past a double followed inherited keys: `xx` led to an object with `xx` again,
  // for ever, and every request hung the process.
  const script = `
    import inject from 'light-my-request';
    import { createHandler, silentLogger } from ${JSON.stringify(join(ROOT, 'src', 'index.ts'))};
    const seen = [];
    const handlers = { track: (event) => { seen.push(Object.keys(event).includes('xx')); } };
    const keyed = createHandler({ apiKeys: [${JSON.stringify(API_KEY)}], log: silentLogger, handlers });
    // A decision as an object: the inherited key is no misspelt key of it.
    const decided = createHandler({ authenticate: () => ({ allow: ['track'] }), log: silentLogger, handlers });
    Object.prototype.xx = { nested: { n: 1 } };
    const headers = ${JSON.stringify(segmentHeaders())};
    for (const [handler, payload] of [
      [keyed, ${JSON.stringify(trackEvent())}],
      [keyed, ${JSON.stringify(trackEvent({ type: 'TRACK', messageId: 'm2' }))}],
      [decided, ${JSON.stringify(trackEvent({ messageId: 'm3' }))}],
      // Still refused: a poisoning key, a number past a double.
      [keyed, '{"type":"track","event":"e","userId":"u","p":{"__proto__":{"x":1}}}'],
      [keyed, '{"type":"track","event":"e","userId":"u","n":1e999}'],
    ]) {
      const res = await inject(handler, { method: 'POST', url: '/', headers, payload });
      console.log(res.statusCode, res.statusCode === 200 ? '' : res.json().code);
    }
    console.log(JSON.stringify(seen));`;
  const run = spawnClean(process.execPath, [...TSX, '--input-type=module', '-e', script]);
  const deadline = setTimeout(() => run.child.kill('SIGKILL'), 20_000);
  try {
    assert.equal(await run.exit, 0, `hung or failed: ${run.stderr()}`);
    const want = ['200 ', '200 ', '200 ', '400 SEG_FORBIDDEN_KEY', '400 SEG_INVALID_JSON'];
    assert.equal(run.stdout(), `${want.join('\n')}\n[false,false,false]\n`);
  } finally {
    clearTimeout(deadline);
    run.child.kill();
  }
});
