import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Analytics } from '@segment/analytics-node';
import {
  createHandler,
  createServer,
  type Handlers,
  RetryError,
  silentLogger,
  ValidationError,
} from '../src/index.ts';
import { API_KEY, recorder, sendOneOfEach, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';

/** A track event of a batch, with `own` fields besides. */
const sentEvent = (messageId: string, own?: object) => ({
  type: 'track',
  event: 'T',
  userId: 'u',
  messageId,
  ...own,
});

describe("Segment's Tracking API and batches", () => {
  test('/v1/{type} takes one event whose type the path gives', async () => {
    const { seen, handlers } = recorder();
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers });
    const res = await inject(handler, { url: '/v1/track', body: { event: 'Signed Up', userId: 'u1' } });
    assert.equal(res.status, 200, res.body);
    assert.equal(seen[0]?.event.type, 'track');
    const same = await inject(handler, { url: '/v1/identify', body: { Type: 'Identify', userId: 'u1' } });
    assert.equal(same.status, 200);
    // A type that says nothing (null, empty) is as missing: the path gives it.
    for (const body of [
      { type: null, event: 'E', userId: 'u1' },
      { type: '', event: 'E', userId: 'u1' },
      { type: null, Type: 'Track', event: 'E', userId: 'u1' },
    ]) {
      const given = await inject(handler, { url: '/v1/track', body });
      assert.equal(given.status, 200, `${JSON.stringify(body)}: ${given.body}`);
    }
    const contradicts = await inject(handler, { url: '/v1/track', body: { type: 'identify', userId: 'u1' } });
    assert.equal(contradicts.status, 400);
    assert.match(contradicts.json().message ?? '', /contradicts/);
    const big = await inject(handler, { url: '/v1/track', body: trackEvent({ pad: 'x'.repeat(33 * 1024) }) });
    assert.equal(big.status, 413);
  });

  test('/v1/batch: every event accepted is 200; top-level context and integrations merge into each', async () => {
    const { seen, handlers } = recorder();
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers });
    const res = await inject(handler, {
      url: '/v1/batch',
      body: {
        batch: [
          trackEvent({ context: { ip: '1.2.3.4' } }),
          { type: 'identify', userId: 'u1', traits: { email: 'a@b.c' }, integrations: { All: false } },
        ],
        context: { library: { name: 'analytics-python' }, ip: '9.9.9.9' },
        integrations: { Mixpanel: true },
      },
    });
    assert.equal(res.status, 200, res.body);
    assert.equal(seen.length, 2);
    assert.deepEqual(seen[0]?.event.context, { library: { name: 'analytics-python' }, ip: '1.2.3.4' });
    assert.deepEqual(seen[1]?.event.integrations, { Mixpanel: true, All: false });
  });

  test("a batch's context and integrations go under the key of the event's that holds a value, not under a null canonical one", async () => {
    const { seen, handlers } = recorder();
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers });
    const own = { type: 'track', event: 'T', userId: 'u', context: null, Context: { ip: 'own' } };
    const res = await inject(handler, {
      url: '/v1/batch',
      body: {
        batch: [{ ...own, integrations: null, Integrations: { All: false } }],
        context: { ip: 'batch' },
        integrations: { X: true },
      },
    });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(seen[0]?.event.context, { ip: 'own' });
    assert.deepEqual(seen[0]?.event.integrations, { X: true, All: false });
    const empty = await inject(handler, {
      url: '/v1/batch',
      body: {
        batch: [{ type: 'track', event: 'T', userId: 'u', messageId: 'e1', context: '' }],
        context: { ip: 'batch' },
      },
    });
    assert.equal(empty.status, 200, empty.body);
    assert.deepEqual(
      seen[1]?.event.context,
      { ip: 'batch' },
      'an empty context says nothing: the batch fills it',
    );
  });

  test("an empty list says nothing of an event's context or integrations (PHP's empty map): the batch's fills it", async () => {
    // `context: []` beside a `Context` that holds a value kept the batch's context out of both, and alone
    // reached the handler as `[]`, where `null` in its place took the batch's (found by a hostile probe).
    const { seen, handlers } = recorder();
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers });
    const event = (messageId: string, own: Record<string, unknown>) => ({
      type: 'track',
      event: 'T',
      userId: 'u',
      messageId,
      ...own,
    });
    const res = await inject(handler, {
      url: '/v1/batch',
      body: {
        batch: [
          event('l1', { context: [], Context: { ip: 'own' } }),
          event('l2', { context: [] }),
          event('l3', { integrations: [], Integrations: { All: false } }),
        ],
        context: { ip: 'batch', locale: 'fr' },
        integrations: { X: true },
      },
    });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(seen[0]?.event.context, { ip: 'own', locale: 'fr' });
    assert.deepEqual(seen[1]?.event.context, { ip: 'batch', locale: 'fr' });
    assert.deepEqual(seen[2]?.event.integrations, { X: true, All: false });
  });

  test("an event's own context and integrations win over the batch's whatever their casing, and keep the event's own key", async () => {
    const { seen, handlers } = recorder();
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers });
    const own = { type: 'track', event: 'T', userId: 'u', Context: { ip: 'own' }, INTEGRATIONS: { X: true } };
    const res = await inject(handler, {
      url: '/v1/batch',
      body: {
        batch: [own],
        context: { ip: 'batch', library: { name: 'lib' } },
        integrations: { X: false, Y: true },
      },
    });
    assert.equal(res.status, 200, res.body);
    const context = { ip: 'own', library: { name: 'lib' } };
    const integrations = { X: true, Y: true };
    assert.deepEqual(
      seen.map(({ event, ctx }) => ({
        context: event.context,
        integrations: event.integrations,
        ctx: ctx.original,
      })),
      [{ context, integrations, ctx: { ...own, Context: context, INTEGRATIONS: integrations } }],
    );
  });

  test("a batch's top-level sentAt is each event's without one of its own (Segment's SDKs date the batch)", async () => {
    const { seen, handlers } = recorder();
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers });
    const sentAt = '2026-12-06T09:00:00.000Z';
    const batch = [
      sentEvent('none'),
      sentEvent('own', { sentAt: '2026-12-06T08:59:59.000Z' }),
      sentEvent('null', { sentAt: null }),
      sentEvent('cased', { SentAt: '2026-12-06T08:00:00.000Z' }),
      sentEvent('empty', { sentAt: '', sent_at: '2026-12-06T07:00:00.000Z' }),
      sentEvent('emptyCased', { SENT_AT: '' }),
    ];
    const res = await inject(handler, { url: '/v1/batch', body: { batch, sentAt } });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(
      seen.map(({ event }) => [event.messageId, event.sentAt]),
      [
        ['none', sentAt],
        ['own', '2026-12-06T08:59:59.000Z'],
        ['null', sentAt],
        ['cased', '2026-12-06T08:00:00.000Z'],
        ['empty', '2026-12-06T07:00:00.000Z'],
        ['emptyCased', sentAt],
      ],
    );
    // What is stored is the event as merged; an empty field of its own is filled under its own key.
    assert.deepEqual(seen[0]?.ctx.original, { ...batch[0], sentAt });
    assert.equal(seen[1]?.ctx.original.sentAt, '2026-12-06T08:59:59.000Z');
    assert.deepEqual(seen[5]?.ctx.original, { ...batch[5], SENT_AT: sentAt });
  });

  test("a batch's sentAt that is not a string of at most 128 bytes as JSON merges nothing; its events are taken", async () => {
    const { seen, handlers } = recorder();
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers });
    // 128 bytes as JSON, its quotes counted, is the most merged.
    const longest = 'x'.repeat(126);
    const ignored = [
      null,
      '',
      1_700_000_000,
      { at: 'now' },
      ['now'],
      true,
      `${longest}x`,
      '\u0000'.repeat(22),
    ];
    for (const [i, sentAt] of [...ignored, longest].entries()) {
      const res = await inject(handler, { url: '/v1/batch', body: { batch: [sentEvent(`s${i}`)], sentAt } });
      assert.equal(res.status, 200, `${JSON.stringify(sentAt)}: ${res.body}`);
    }
    assert.deepEqual(
      seen.map(({ event }) => event.sentAt),
      [...ignored.map(() => undefined), longest],
    );
    // On /v1/{type} there is no envelope: a sentAt there is the event's own, checked as such.
    const typed = await inject(handler, { url: '/v1/track', body: { ...sentEvent('t1'), sentAt: 5 } });
    assert.equal(typed.status, 400);
    assert.equal(typed.json().code, 'SEG_INVALID_EVENT');
  });

  test("a batch's sentAt does not count in its events' 32 KiB, as Segment's SDKs measure them", async () => {
    // Counted, an event @segment/analytics-node sent at 32,760 bytes was a 413 (final): the SDK dates the
    // batch, not the event, and measures the event without it.
    const { seen, handlers } = recorder();
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers });
    const sentAt = '2026-12-06T09:00:00.000Z';
    const padded = (bytes: number) => {
      const event = sentEvent('big', { pad: '' });
      return { ...event, pad: 'x'.repeat(bytes - Buffer.byteLength(JSON.stringify(event))) };
    };
    const fits = await inject(handler, { url: '/v1/batch', body: { batch: [padded(32 * 1024)], sentAt } });
    assert.equal(fits.status, 200, fits.body);
    assert.equal(seen[0]?.event.sentAt, sentAt, 'dated all the same');
    const over = await inject(handler, {
      url: '/v1/batch',
      body: { batch: [padded(32 * 1024 + 1)], sentAt },
    });
    assert.equal(over.status, 400, over.body);
    assert.equal(over.json().code, 'SEG_BATCH_REFUSED');
    assert.match(over.json().message ?? '', /#0: 413/);
  });

  test("what a handler does to one event's merged context is not seen by the others of its batch", async () => {
    const seen: unknown[] = [];
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      handlers: {
        track: (event, ctx) => {
          seen.push(structuredClone({ context: event.context, original: ctx.original.context }));
          const context = event.context as { library: { tenant?: string }; tenant?: string };
          context.tenant = `data-of-${event.userId}`;
          context.library.tenant = `data-of-${event.userId}`;
        },
      },
    });
    const context = { library: { name: 'analytics-x' } };
    const event = (userId: string, own?: object) => ({ type: 'track', event: 'E', userId, context: own });
    // Without a context of its own, and with one merged under the batch's.
    const batch = [event('alice'), event('bob'), event('carol', { ip: '1.2.3.4' })];
    const res = await inject(handler, { url: '/v1/batch', body: { batch, context } });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(seen.slice(1), [
      { context: { library: { name: 'analytics-x' } }, original: { library: { name: 'analytics-x' } } },
      {
        context: { library: { name: 'analytics-x' }, ip: '1.2.3.4' },
        original: { library: { name: 'analytics-x' }, ip: '1.2.3.4' },
      },
    ]);
  });

  test('a JSON array at the event path (Webhooks batching) is a batch', async () => {
    const { seen, handlers } = recorder();
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers });
    const res = await inject(handler, {
      body: [trackEvent(), trackEvent(), { type: 'page', anonymousId: 'a' }],
    });
    assert.equal(res.status, 200);
    assert.equal(seen.length, 3);
  });

  test('final refusals only: 400 naming each refused event; the others are processed', async () => {
    const { seen, handlers } = recorder();
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers });
    const res = await inject(handler, {
      url: '/v1/batch',
      body: {
        batch: [
          trackEvent(),
          { type: 'track', userId: 'u' },
          'not an event',
          { type: 'purchase', userId: 'u' },
        ],
      },
    });
    assert.equal(res.status, 400);
    assert.equal(res.json().code, 'SEG_BATCH_REFUSED');
    assert.match(res.json().message ?? '', /^1 of 4 events accepted/);
    assert.match(res.json().message ?? '', /#1: 400 track: "event" is required/);
    assert.match(res.json().message ?? '', /#2: 400/);
    assert.match(res.json().message ?? '', /#3: 501/);
    assert.equal(seen.length, 1);
  });

  test("one event the parser's guards refuse is refused alone, as it would be sent alone; its batch-mates are taken", async () => {
    // An event nested to the limit (64) is taken alone and in a batch alike; one past it, one with a
    // __proto__ key, one with a number past a double's range: each refused in the list, not the batch.
    const nested = (levels: number) => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
    const track = (id: string, extra: string) =>
      `{"type":"track","event":"E","userId":"u","messageId":"${id}"${extra}}`;
    const events = [
      track('ok1', ''),
      track('deep', `,"properties":${nested(63)}`),
      track('deeper', `,"properties":${nested(64)}`),
      track('poisoned', ',"properties":{"x":{"__proto__":{"admin":true}}}'),
      track('infinite', ',"properties":{"price":1e999}'),
      track('ok2', ''),
    ];
    const handler = (handlers: Handlers) =>
      createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers });
    const alone = recorder();
    for (const [i, want] of [
      [1, 200],
      [2, 400],
    ] as const) {
      const res = await inject(handler(alone.handlers), { body: events[i] as string });
      assert.equal(res.status, want, res.body);
    }
    for (const [url, body] of [
      ['/', `[${events.join(',')}]`],
      ['/v1/batch', `{"batch":[${events.join(',')}],"context":{"library":{"name":"analytics-node"}}}`],
    ] as const) {
      const { seen, handlers } = recorder();
      const res = await inject(handler(handlers), { url, body });
      assert.equal(res.status, 400, `${url}: ${res.body}`);
      const { code, message = '' } = res.json();
      assert.equal(code, 'SEG_BATCH_REFUSED', url);
      assert.match(message, /^3 of 6 events accepted/);
      assert.match(message, /#2: 400 Event #2 nests deeper than 64 levels/);
      assert.match(message, /#3: 400 Event #3 contains a forbidden key: properties\.x\.__proto__/);
      assert.match(
        message,
        /#4: 400 Event #4 holds a number beyond the range of a double at properties\.price/,
      );
      assert.deepEqual(
        seen.map((s) => s.event.messageId),
        ['ok1', 'deep', 'ok2'],
        url,
      );
    }
  });

  test('what lies around the events is guarded as a body: it goes into each of them', async () => {
    const { seen, handlers } = recorder();
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers });
    const batch = JSON.stringify([trackEvent()]);
    for (const [around, code] of [
      ['"context":{"__proto__":{"admin":true}}', 'SEG_FORBIDDEN_KEY'],
      ['"__proto__":{"admin":true}', 'SEG_FORBIDDEN_KEY'],
      ['"integrations":{"n":-1e999}', 'SEG_INVALID_JSON'],
      [`"context":${'{"a":'.repeat(64)}1${'}'.repeat(64)}`, 'SEG_TOO_DEEP'],
    ] as const) {
      const res = await inject(handler, { url: '/v1/batch', body: `{"batch":${batch},${around}}` });
      assert.equal(res.status, 400, around);
      assert.equal(res.json().code, code, around);
    }
    // Past twice the limit a body is no batch of events: refused whole, before it is parsed.
    const bomb = await inject(handler, { body: `[${'['.repeat(200)}${']'.repeat(200)}]` });
    assert.equal(bomb.status, 400);
    assert.equal(bomb.json().code, 'SEG_TOO_DEEP');
    assert.match(bomb.json().message ?? '', /deeper than 128 levels/);
    assert.equal(seen.length, 0);
  });

  test("a batch a framework parsed: its odd events refused alone too, a number past a double's range included", async () => {
    const { seen, handlers } = recorder();
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers });
    const parsedBody = JSON.parse(
      `[${JSON.stringify(trackEvent())},{"type":"track","event":"E","userId":"u","p":{"__proto__":1}},` +
        `{"type":"track","event":"E","userId":"u","n":1e999}]`,
    );
    // And what a host's toJSON writes, which its value did not hold: the events handed on are as written.
    const poison = '{"type":"track","event":"E","userId":"u","__proto__":{"polluted":1}}';
    parsedBody.push({ ...trackEvent(), toJSON: () => JSON.parse(poison) });
    const res = await inject(handler, { parsedBody });
    assert.equal(res.status, 400, res.body);
    assert.match(res.json().message ?? '', /^1 of 4 events accepted/);
    assert.match(res.json().message ?? '', /#3: 400 Event #3 contains a forbidden key: __proto__/);
    assert.match(res.json().message ?? '', /#1: 400 Event #1 contains a forbidden key: p\.__proto__/);
    assert.match(
      res.json().message ?? '',
      /#2: 400 Event #2 holds a number beyond the range of a double at n/,
    );
    assert.equal(seen.length, 1);
  });

  test('the refusals listed stay within a few thousand characters; the rest are counted', async () => {
    // 150 events of long unknown types answered in a message of 10,600 characters.
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers: recorder().handlers });
    const batch = Array.from({ length: 150 }, (_, n) => ({ type: `t${n}${'x'.repeat(200)}`, userId: 'u' }));
    const res = await inject(handler, { url: '/v1/batch', body: { batch } });
    assert.equal(res.status, 400);
    const message = res.json().message ?? '';
    assert.ok(message.length <= 2_200, `${message.length} characters`);
    assert.match(
      message,
      /^0 of 150 events accepted; refused: #0: 501 "t0x+…" is not a Segment event type; #1: 501/,
    );
    const listed = message.match(/#\d+: 501/g)?.length ?? 0;
    assert.ok(listed >= 10, `${listed} listed`);
    assert.match(message, new RegExp(`; and ${150 - listed} more$`));
  });

  test('a retryable failure makes the batch a 503; its retry processes only what failed', async () => {
    let down = true;
    const { seen, handlers } = recorder((event) =>
      down && event.event === 'Flaky' ? new RetryError('Downstream is down') : undefined,
    );
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers });
    const batch = {
      batch: [trackEvent({ messageId: 'b-1' }), trackEvent({ messageId: 'b-2', event: 'Flaky' })],
    };
    const first = await inject(handler, { url: '/v1/batch', body: batch });
    assert.equal(first.status, 503);
    assert.equal(first.json().code, 'SEG_BATCH_RETRY');
    assert.equal(first.headers['retry-after'], '1');
    assert.deepEqual(
      seen.map((s) => s.event.messageId),
      ['b-1'],
    );
    down = false;
    const retry = await inject(handler, { url: '/v1/batch', body: batch });
    assert.equal(retry.status, 200);
    assert.deepEqual(
      seen.map((s) => s.event.messageId),
      ['b-1', 'b-2'],
    );
  });

  test('the same messageId twice in one batch: the copy is answered as the first, once it is', async () => {
    // The copy met the first still running: "being processed now", a 503, and a batch whose first event
    // was refused for good came back 503 on every retry, its handler run again each time, for hours.
    const calls: string[] = [];
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      handlers: {
        track: async (event) => {
          calls.push(`${event.messageId}:${event.event}`);
          await new Promise((resolve) => setTimeout(resolve, 5));
          if (event.event === 'Bad') throw new ValidationError('Missing email address');
          if (event.event === 'Later') throw new RetryError('Downstream is down');
        },
      },
    });
    const accepted = await inject(handler, {
      url: '/v1/batch',
      body: { batch: [sentEvent('m1'), sentEvent('m2'), sentEvent('m1'), sentEvent('m1')] },
    });
    assert.equal(accepted.status, 200, accepted.body);
    assert.deepEqual(calls, ['m1:T', 'm2:T'], 'each copy a duplicate of the first, run once');
    calls.length = 0;
    const bad = sentEvent('m3', { event: 'Bad' });
    for (let attempt = 0; attempt < 2; attempt++) {
      const refused = await inject(handler, { body: [bad, bad] });
      assert.equal(refused.status, 400, refused.body);
      assert.equal(refused.json().code, 'SEG_BATCH_REFUSED');
      assert.match(
        refused.json().message ?? '',
        /#0: 400 Missing email address; #1: 400 Missing email address/,
      );
    }
    assert.deepEqual(calls, ['m3:Bad', 'm3:Bad'], 'once a request: a messageId is one event');
    // The messageId as the duplicate filter reads it, under any spelling (an empty list says nothing).
    calls.length = 0;
    const spelt = { ...sentEvent('m7', { event: 'Bad' }), messageId: [], message_id: 'm7' };
    const odd = await inject(handler, { url: '/v1/batch', body: { batch: [spelt, spelt] } });
    assert.equal(odd.status, 400, odd.body);
    assert.deepEqual(calls, ['m7:Bad']);
    // Whichever copy is too large for the Tracking API: the messageId's one answer is its first's.
    const pad = { properties: { pad: 'x'.repeat(40 * 1024) } };
    const sized = await inject(handler, {
      url: '/v1/batch',
      body: { batch: [sentEvent('m5'), sentEvent('m5', pad)] },
    });
    assert.equal(sized.status, 200, sized.body);
    const first = await inject(handler, {
      url: '/v1/batch',
      body: { batch: [sentEvent('m6', pad), sentEvent('m6')] },
    });
    assert.equal(first.status, 400, first.body);
    assert.match(first.json().message ?? '', /^0 of 2 events accepted; refused: #0: 413 .*; #1: 413/);
    // Copies in later slices of the batch (64 events a turn) too.
    calls.length = 0;
    const spread = Array.from({ length: 150 }, (_, n) => sentEvent(`s${n % 3}`));
    assert.equal((await inject(handler, { url: '/v1/batch', body: { batch: spread } })).status, 200);
    assert.deepEqual(calls.sort(), ['s0:T', 's1:T', 's2:T']);
    // A copy whose first is refused for a retryable reason is retried with it.
    const retried = await inject(handler, { body: [sentEvent('m4', { event: 'Later' }), sentEvent('m4')] });
    assert.equal(retried.status, 503, retried.body);
    assert.match(retried.json().message ?? '', /#0: 503 Downstream is down; #1: 503 Downstream is down/);
  });

  test('a batch whose every event is taken to be processed later is a 202, as one such event is', async () => {
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      handlers: { track: (event) => (event.event === 'Now' ? undefined : { status: 202 as const }) },
    });
    const later = await inject(handler, { body: [sentEvent('l1'), sentEvent('l2')] });
    assert.equal(later.status, 202, later.body);
    const mixed = await inject(handler, { body: [sentEvent('l3'), sentEvent('l4', { event: 'Now' })] });
    assert.equal(mixed.status, 200, 'some processed now: 200');
  });

  test('idempotency: false runs every copy of a messageId, those of one batch included', async () => {
    const { seen, handlers } = recorder();
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers, idempotency: false });
    const res = await inject(handler, {
      url: '/v1/batch',
      body: { batch: [sentEvent('c1'), sentEvent('c1')] },
    });
    assert.equal(res.status, 200, res.body);
    assert.equal(seen.length, 2);
  });

  test('a batch of the wrong shape is a 400; trackingApi: false leaves only the event path', async () => {
    const { handlers } = recorder();
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers });
    for (const body of [{ batch: 'x' }, { batch: [] }, [1, 2]]) {
      const res = await inject(handler, { url: Array.isArray(body) ? '/' : '/v1/batch', body });
      assert.equal(res.status, 400, JSON.stringify(body));
    }
    // Segment's limits: 500 KiB a batch (the body limit here is larger), 32 KiB an event within it.
    const big = { batch: Array.from({ length: 20 }, () => trackEvent({ pad: 'x'.repeat(26 * 1024) })) };
    const roomy = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      handlers,
      maxBodyBytes: 1024 * 1024,
    });
    const tooBig = await inject(roomy, { url: '/v1/batch', body: big });
    assert.equal(tooBig.status, 413);
    assert.equal(tooBig.json().code, 'SEG_BODY_TOO_LARGE');
    assert.match(tooBig.json().message ?? '', /512000/);
    const oneTooBig = await inject(handler, {
      url: '/v1/batch',
      body: { batch: [trackEvent(), trackEvent({ pad: 'x'.repeat(33 * 1024) })] },
    });
    assert.equal(oneTooBig.status, 400);
    assert.match(oneTooBig.json().message ?? '', /#1: 413/);
    // Segment's Webhooks (Actions) batches have no limit an event (a 413 in a batch's answer is final):
    // an array on the event path holds what one event there may be, its body limit the bound.
    const actions = await inject(handler, {
      body: [trackEvent(), trackEvent({ pad: 'x'.repeat(40 * 1024) })],
    });
    assert.equal(actions.status, 200, actions.body);
    const plain = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers, trackingApi: false });
    assert.equal((await inject(plain, { url: '/v1/track', body: trackEvent() })).status, 404);
  });

  test("Segment's own Node SDK (@segment/analytics-node) sends its batches here", async () => {
    const { seen, handlers } = recorder();
    const endpoint = createServer({
      http: true,
      host: '127.0.0.1',
      port: 0,
      apiKeys: ['write-key'],
      log: silentLogger,
      handlers,
    });
    const url = new URL(await endpoint.listen());
    const analytics = new Analytics({
      writeKey: 'write-key',
      host: url.origin,
      path: '/v1/batch',
      flushAt: 5,
    });
    const errors: unknown[] = [];
    analytics.on('error', (err) => errors.push(err));
    sendOneOfEach(analytics);
    await analytics.closeAndFlush({ timeout: 5000 });
    await endpoint.close();
    assert.deepEqual(errors, []);
    assert.deepEqual(seen.map((s) => s.event.type).sort(), ['alias', 'group', 'identify', 'page', 'track']);
    assert.ok(seen.every((s) => s.ctx.apiKey === 'write-key'));
    assert.equal(seen.find((s) => s.event.type === 'track')?.event.event, 'Signed Up');
    // The SDK dates its batch, not its events: each event is given the batch's sentAt.
    for (const { event } of seen) assert.match(String(event.sentAt), /^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
  });
});
