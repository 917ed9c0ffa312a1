import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import RudderAnalytics from '@rudderstack/rudder-sdk-node';
import { createHandler, createServer, silentLogger } from '../src/index.ts';
import {
  API_KEY,
  type NodeSdk,
  recorder,
  type Seen,
  segmentHeaders,
  sendOneOfEach,
  trackEvent,
} from './helpers.ts';
import { testCert } from './helpers-cert.ts';
import { inject } from './helpers-inject.ts';

// Senders that no one here wrote, run against a real server: what they put on the wire is what
// partners' customers send. Segment's own @segment/analytics-node is in batch.test.ts.

const WRITE_KEY = 'write-key';

// analytics-node 6 ships no types: the little of its API used here.
interface LegacySdk extends NodeSdk {
  flush(): Promise<unknown>;
}
const LegacyAnalytics = createRequire(import.meta.url)('analytics-node') as new (
  writeKey: string,
  options: {
    host: string;
    flushAt: number;
    flushInterval: number;
    retryCount: number;
    errorHandler: (err: { response?: { status?: number } } | undefined) => void;
  },
) => LegacySdk;

/**
 * Starts an endpoint (HTTPS with the test certificate when `tls`, else plain HTTP) whose handlers
 * record every event; `send` delivers to its origin.
 */
async function deliver(send: (origin: string) => Promise<void>, tls = false) {
  const { seen, handlers } = recorder();
  const endpoint = createServer({
    ...(tls ? { tls: testCert() } : { http: true }),
    host: '127.0.0.1',
    port: 0,
    apiKeys: [WRITE_KEY],
    log: silentLogger,
    handlers,
  });
  const url = new URL(await endpoint.listen());
  try {
    await send(url.origin);
  } finally {
    await endpoint.close();
  }
  return seen;
}

function assertDelivered(seen: Seen): void {
  assert.deepEqual(seen.map((s) => s.event.type).sort(), ['alias', 'group', 'identify', 'page', 'track']);
  assert.ok(seen.every((s) => s.ctx.apiKey === WRITE_KEY));
  const track = seen.find((s) => s.event.type === 'track')?.event;
  assert.equal(track?.event, 'Signed Up');
  assert.deepEqual(track?.properties, { plan: 'pro' });
}

describe('real senders', () => {
  test("RudderStack's Node SDK (@rudderstack/rudder-sdk-node 3) delivers its gzip batches", async () => {
    let failure: number | string | undefined;
    const seen = await deliver(async (origin) => {
      // Its defaults: gzip on, POST /v1/batch, Basic auth with the write key. Over TLS, as run in
      // production, trusting the test certificate through its axios options.
      const analytics = new RudderAnalytics(WRITE_KEY, {
        dataPlaneUrl: origin,
        axiosConfig: { httpsAgent: new Agent({ ca: testCert().cert }) },
        flushAt: 10,
        flushInterval: 60_000,
        retryCount: 0,
        logLevel: 'none',
        errorHandler: (err) => {
          failure = err?.response?.status ?? String(err);
        },
      });
      sendOneOfEach(analytics);
      await analytics.flush();
    }, true);
    assert.equal(failure, undefined);
    assertDelivered(seen);
  });

  test("Segment's legacy Node SDK (analytics-node 6) delivers its batches", async () => {
    let failure: number | string | undefined;
    const seen = await deliver(async (origin) => {
      const analytics = new LegacyAnalytics(WRITE_KEY, {
        host: origin,
        flushAt: 10,
        flushInterval: 60_000,
        retryCount: 0,
        errorHandler: (err) => {
          failure = err?.response?.status ?? String(err);
        },
      });
      sendOneOfEach(analytics);
      await analytics.flush();
    });
    assert.equal(failure, undefined);
    assertDelivered(seen);
  });
});

describe('Content-Type on the Tracking API paths', () => {
  const endpoint = () =>
    createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers: { track: () => {} } });
  const form = { ...segmentHeaders(), 'content-type': 'application/x-www-form-urlencoded' };

  test('/v1/* takes a JSON body whatever type it declares, compressed or not', async () => {
    const batch = JSON.stringify({ batch: [trackEvent(), trackEvent()] });
    for (const [url, body] of [
      ['/v1/batch', batch],
      ['/v1/import', batch],
      ['/v1/track', JSON.stringify(trackEvent())],
    ] as const) {
      for (const type of [
        'application/x-www-form-urlencoded',
        'text/plain',
        'application/octet-stream',
        // Its charset too (CONTRACT.md: whatever its declared type): the bytes are read as JSON's, UTF-8.
        'application/x-www-form-urlencoded; charset=ISO-8859-1',
        'application/json; charset=us-ascii',
        'application/json; charset=latin1',
      ]) {
        const res = await inject(endpoint(), { url, headers: { ...form, 'content-type': type }, body });
        assert.equal(res.status, 200, `${url} ${type}: ${res.body}`);
      }
      const gzipped = await inject(endpoint(), {
        url,
        headers: { ...form, 'content-encoding': 'gzip' },
        body: gzipSync(body),
      });
      assert.equal(gzipped.status, 200, `${url} gzip: ${gzipped.body}`);
    }
  });

  test('/v1/*: a Unicode charset other than UTF-8 (UTF-7, UTF-16, UTF-32) is still a 415 that says so: its bytes cannot be read as JSON', async () => {
    // UTF-7 too, which express.json() decodes ("a+b-c" becomes "ac"), and Windows' name for UTF-16.
    // Quoted with escapes, as RFC 9110's quoted-string allows and body-parser reads it, it is the same name.
    for (const charset of [
      'utf-16',
      'UTF-16LE',
      'utf-32',
      'utf32be',
      'utf-7',
      'unicode',
      '"\\utf-7"',
      '"u\\t\\f-16"',
    ]) {
      const res = await inject(endpoint(), {
        url: '/v1/track',
        headers: { ...form, 'content-type': `application/json; charset=${charset}` },
        body: JSON.stringify(trackEvent()),
      });
      assert.equal(res.status, 415, charset);
      assert.match(String(res.json().message), /charset .* is not supported: send UTF-8 JSON/);
    }
  });

  test('/v1/*: a body that is not JSON is a 400; the event path stays strict (415)', async () => {
    for (const url of ['/v1/batch', '/v1/track']) {
      const res = await inject(endpoint(), { url, headers: form, body: 'type=track&event=Signed+Up' });
      assert.equal(res.status, 400, url);
      assert.equal(res.json().code, 'SEG_INVALID_JSON');
    }
    const partner = await inject(endpoint(), { headers: form, body: trackEvent() });
    assert.equal(partner.status, 415);
    assert.equal(partner.json().code, 'SEG_UNSUPPORTED_MEDIA_TYPE');
  });
});
