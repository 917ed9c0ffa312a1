// Per-customer rate limits (`rateLimit`, `--rate-limit`, a key's `rate`): one customer past its rate is
// answered 429 with Retry-After, the others are not; a batch counts as its events. And `/live`.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig, parseKeysFile } from '../src/config.ts';
import { createHandler, silentLogger } from '../src/index.ts';
import { RateLimiter } from '../src/limits.ts';
import { API_KEY, basic, segmentHeaders, trackEvent, twoKeyHandler } from './helpers.ts';
import { inject } from './helpers-inject.ts';

const handler = twoKeyHandler;

const send = (h: ReturnType<typeof handler>, key = API_KEY, body: unknown = trackEvent()) =>
  inject(h, { headers: { ...segmentHeaders(), authorization: basic(key) }, body });

describe('RateLimiter', () => {
  test('a burst of `rate`, then a wait of a token; refilled over time', () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    for (let i = 0; i < 3; i++) {
      limiter.admit('k', 3);
      limiter.charge('k', 3, 1);
    }
    assert.throws(() => limiter.admit('k', 3), { code: 'SEG_RATE_LIMITED', status: 429, retryAfter: 1 });
    now += 400; // 1.2 tokens back
    limiter.admit('k', 3);
    assert.doesNotThrow(() => limiter.admit('other', 3), 'another key has its own bucket');
  });

  test('a batch larger than the burst passes on one token and leaves the key in debt', () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    limiter.admit('k', 10);
    limiter.charge('k', 10, 50); // 10 - 50 = -40 tokens
    assert.throws(() => limiter.admit('k', 10), { retryAfter: 5 }); // 41 tokens at 10 a second
    now += 3_000; // -10 tokens
    assert.throws(() => limiter.admit('k', 10));
    now += 1_200; // 2 tokens
    limiter.admit('k', 10);
  });
});

describe('RateLimiter under overlapping requests', () => {
  test('each request takes its token when let in: a burst of overlapping requests is the burst', () => {
    const limiter = new RateLimiter(() => 0);
    let admitted = 0;
    for (let i = 0; i < 50; i++) {
      try {
        limiter.admit('k', 5);
        admitted++;
      } catch {
        // refused
      }
    }
    assert.equal(admitted, 5, 'bodies not read yet do not all pass on the same token');
  });

  test('debt is bounded: a minute at the rate, whatever was charged', () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    limiter.admit('k', 5);
    limiter.charge('k', 5, 10_000); // 10,000 events at 5 a second: 2,000 s of debt, kept to 60
    // Shut out for a minute, not a minute and the next token (README: "at most a minute").
    assert.throws(() => limiter.admit('k', 5), { retryAfter: 60 });
    now += 59_900;
    assert.throws(() => limiter.admit('k', 5), { retryAfter: 1 });
    now += 100;
    limiter.admit('k', 5);
  });

  test('at a rate slower than one a minute, the bound on debt gives no tokens back', () => {
    const limiter = new RateLimiter(() => 0);
    limiter.admit('k', 0.01); // one event every 100 s
    limiter.charge('k', 0.01, 3);
    assert.throws(() => limiter.admit('k', 0.01), { retryAfter: 100 });
  });

  test('a rate below 1 event a second lets one event through every 1/rate seconds', () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    limiter.admit('k', 0.5);
    assert.throws(() => limiter.admit('k', 0.5), { retryAfter: 2 });
    now += 2_000;
    limiter.admit('k', 0.5);
  });
});

describe('rateLimit through the handler', () => {
  test('past its rate a key gets 429 SEG_RATE_LIMITED with Retry-After; another key does not', async () => {
    const h = handler({ rateLimit: 3, metricsPath: '/metrics' });
    // Sent at once: one after the other, a slow machine took over a third of a second for them, and the
    // bucket had a token again.
    const answers = await Promise.all(
      Array.from({ length: 5 }, (_, i) => send(h, API_KEY, trackEvent({ messageId: `m${i}` }))),
    );
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200, 429, 429],
    );
    for (const refused of answers.slice(3)) {
      assert.equal(refused.json().code, 'SEG_RATE_LIMITED');
      assert.equal(refused.headers['retry-after'], '1');
    }
    assert.equal((await send(h, 'other-key')).status, 200);
    const metrics = (await inject(h, { method: 'GET', url: '/metrics' })).body;
    assert.match(metrics, /segment_endpoint_requests_total\{type="unknown",status="429"\} 2/);
    assert.doesNotMatch(metrics, /test-key|other-key/, 'no label per key');
  });

  test('a batch counts as its events', async () => {
    const h = handler({ rateLimit: 5 });
    const batch = { batch: Array.from({ length: 8 }, (_, i) => ({ ...trackEvent({ messageId: `b${i}` }) })) };
    const first = await inject(h, { url: '/v1/batch', headers: segmentHeaders(), body: batch });
    assert.equal(first.status, 200, first.body);
    const next = await send(h);
    assert.equal(next.status, 429, 'the batch spent more than the burst');
    assert.equal(next.headers['retry-after'], '1');
  });

  test('a batch refused whole, too large to store, costs its request and not its events', async () => {
    // Each event gets the batch's context of ~6 KB: 8 of them stored pass twice maxBodyBytes, a 413.
    const h = handler({ rateLimit: 5, maxBodyBytes: 20_000 });
    const context = { note: 'x'.repeat(6_000) };
    const batch = { context, batch: Array.from({ length: 8 }, (_, i) => trackEvent({ messageId: `s${i}` })) };
    const refused = await inject(h, { url: '/v1/batch', headers: segmentHeaders(), body: batch });
    assert.equal(refused.status, 413, refused.body);
    assert.equal(refused.json().code, 'SEG_STORED_TOO_LARGE');
    // Nothing was taken, and Segment does not retry a 413: the key's next events are not in debt for it.
    assert.equal((await send(h)).status, 200, 'charged for the events of a batch that was refused');
  });

  test("a key's own rate wins, from its spec or from authenticate", async () => {
    const own = createHandler({
      apiKeys: [{ key: API_KEY, rate: 1 }, 'other-key'],
      rateLimit: 100,
      log: silentLogger,
      handlers: { track: () => {} },
    });
    assert.equal((await send(own)).status, 200);
    assert.equal((await send(own)).status, 429);
    assert.equal((await send(own, 'other-key')).status, 200);
    const decided = createHandler({
      authenticate: (key) => (key === API_KEY ? { rate: 1 } : 'unknown'),
      log: silentLogger,
      handlers: { track: () => {} },
    });
    assert.equal((await send(decided)).status, 200);
    assert.equal((await send(decided)).status, 429);
  });

  test('off by default', async () => {
    const h = handler({});
    for (let i = 0; i < 50; i++)
      assert.equal((await send(h, API_KEY, trackEvent({ messageId: `n${i}` }))).status, 200);
  });
});

test('the command line: --rate-limit, and rate=N in the keys file', () => {
  const config = parseConfig(['--http', '--api-key', 'k', '--rate-limit', '20'], {});
  assert.equal(typeof config === 'object' && config.options.rateLimit, 20);
  assert.deepEqual(parseKeysFile('k1 rate=5\nk2 track secret=s rate=0\n'), [
    { key: 'k1', rate: 5 },
    { key: 'k2', types: ['track'], signatureSecret: 's', rate: 0 },
  ]);
  // A rate that is not a whole number is named, not the line's whole grammar repeated.
  for (const rate of ['rate=x', 'rate=0.5', 'rate=', 'rate=-1']) {
    assert.throws(
      () => parseKeysFile(`k1 ${rate}\n`),
      (err: Error) =>
        err.message.startsWith(`--api-keys-file line 1: ${rate}: `) && !/expected/.test(err.message),
    );
  }
  assert.throws(() => parseKeysFile('k1 rate=1 rate=2\n'), /line 1: expected "KEY/);
});

describe('/live', () => {
  test('200 while the process runs: ready or not, draining or not; GET or HEAD only', async () => {
    let ready = false;
    const h = handler({ ready: () => ready });
    const live = () => inject(h, { method: 'GET', url: '/live' });
    assert.equal((await inject(h, { method: 'GET', url: '/health' })).status, 503);
    assert.deepEqual([(await live()).status, (await live()).body], [200, '{"status":"live"}']);
    ready = true;
    h.drain();
    assert.equal((await inject(h, { method: 'GET', url: '/health' })).status, 503);
    assert.equal((await live()).status, 200);
    assert.equal((await inject(h, { method: 'HEAD', url: '/live' })).status, 200);
    assert.equal((await inject(h, { method: 'POST', url: '/live' })).status, 405);
  });

  test('a path given as /live before /live existed keeps it, and liveness is then off', async () => {
    const h = handler({ metricsPath: '/live' });
    assert.match((await inject(h, { method: 'GET', url: '/live' })).body, /segment_endpoint_requests_total/);
    assert.equal((await inject(handler({ path: '/live' }), { method: 'GET', url: '/live' })).status, 405);
  });

  test('its path is an option, and differs from the others', () => {
    assert.throws(
      () => handler({ livePath: '/health' }),
      /options.livePath must differ from options.healthPath/,
    );
    assert.throws(() => handler({ livePath: '/' }), /options.livePath must differ from options.path/);
  });
});
