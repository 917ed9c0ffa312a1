import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { jsonLogger } from '../src/log.ts';
import { endpoint } from './handler-harness.ts';
import { trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';

// The front door, before any event is read: the event path and the health path, the methods each takes,
// and draining.

describe('route', () => {
  test('only the configured path takes events: another path is 404', async () => {
    const res = await inject(endpoint({ path: '/segment' }), { url: '/', body: trackEvent() });
    assert.equal(res.status, 404);
    assert.equal(res.json().code, 'SEG_NOT_FOUND');
    assert.match(res.headers['content-type'] ?? '', /^application\/json/);
    const ok = await inject(endpoint({ path: '/segment' }), { url: '/segment?x=1', body: trackEvent() });
    assert.equal(ok.status, 200);
  });

  test('a path that percent-encodes letters, digits or -._~ is the same path; other encodings are not', async () => {
    // RFC 3986 §6.2.2.2: %74 is "t". A 404 is final, and Segment would drop such an event for good.
    const handler = endpoint({ path: '/segment-1' });
    for (const url of ['/%73egment%2D1', '/segm%65nt-%31?x=%41', '/%73%65%67%6D%65%6E%74%2d%31']) {
      const res = await inject(handler, { url, body: trackEvent() });
      assert.equal(res.status, 200, url);
    }
    // A reserved character encoded (%2F is not "/"), an invalid escape, a letter encoded twice: not it.
    for (const url of ['/segment%2F1', '/segment-%1', '/segment-1%', '/%2573egment-1']) {
      const res = await inject(handler, { url, body: trackEvent() });
      assert.equal(res.status, 404, url);
      assert.equal(res.json().code, 'SEG_NOT_FOUND');
    }
    // The Tracking API's paths too; a path configured with an escape in it is still taken as configured.
    assert.equal((await inject(handler, { url: '/segment-1/v1/%74rack', body: trackEvent() })).status, 200);
    const escaped = endpoint({ path: '/seg%6Dent' });
    for (const url of ['/seg%6Dent?x=1', '/seg%6Dent/v1/track']) {
      assert.equal((await inject(escaped, { url, body: trackEvent() })).status, 200, url);
    }
  });

  test('health and metrics are matched as sent: a proxy that hides /metrics by its path keeps it hidden', async () => {
    const handler = endpoint({ metricsPath: '/metrics' });
    for (const url of ['/%6detrics', '/h%65alth']) {
      assert.equal((await inject(handler, { method: 'GET', url })).status, 404, url);
    }
    assert.equal((await inject(handler, { method: 'GET', url: '/metrics' })).status, 200);
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

  test("a `ready` that throws, or answers neither true nor false (an async function's Promise), is health 503 unavailable, said in the log; the host runs on", async () => {
    let ready: () => unknown = () => {
      throw new Error('the database check failed');
    };
    let asked = 0;
    const logged: Array<{ msg: string; err?: { message?: string } }> = [];
    const handler = endpoint({
      ready: () => {
        asked++;
        return ready() as boolean;
      },
      log: jsonLogger('error', (line) => logged.push(JSON.parse(line))),
    });
    const health = async () => {
      const res = await inject(handler, { method: 'GET', url: '/health', headers: {} });
      return `${res.status} ${res.body}`;
    };
    const unavailable = '503 {"status":"unavailable"}';
    assert.equal(await health(), unavailable);
    assert.equal(await health(), unavailable);
    // Not asked for a method the health path does not take.
    assert.equal((await inject(handler, { method: 'POST', url: '/health', headers: {} })).status, 405);
    assert.equal(asked, 2);
    ready = async () => true;
    assert.equal(await health(), unavailable);
    // The usual async check, failing: its rejection is nobody's to handle, and must not end the host.
    ready = async () => {
      throw new Error('the database is down');
    };
    assert.equal(await health(), unavailable);
    await new Promise((resolve) => setImmediate(resolve));
    ready = () => 'yes';
    assert.equal(await health(), unavailable);
    ready = () => true;
    assert.equal(await health(), '200 {"status":"ok"}');
    assert.deepEqual(
      logged.map((line) => [line.msg, line.err?.message]),
      [
        ['the ready option threw: health answers unavailable', 'the database check failed'],
        ['the ready option answered a Promise, not true or false: health answers unavailable', undefined],
        ['the ready option answered a string, not true or false: health answers unavailable', undefined],
      ],
      'each fault said once, not at every check',
    );
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
    assert.equal(health.json().message, 'Method not allowed: use GET or HEAD', 'as its Allow says');
  });
});
