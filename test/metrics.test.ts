import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createHandler, silentLogger } from '../src/index.ts';
import { API_KEY, segmentHeaders, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';
import { CLI, httpFlags, spawnClean } from './helpers-spawn.ts';
import { waitFor } from './helpers-wait.ts';

/** `name{labels} value` lines of a Prometheus text exposition, as a map. */
function parse(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    values.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return values;
}

describe('metrics', () => {
  test('events by type and status, latency, duplicates and in flight, on the metrics path', async () => {
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      metricsPath: '/metrics',
      handlers: { track: () => {}, identify: () => {} },
    });
    const event = trackEvent({ messageId: 'once' });
    await inject(handler, { body: event });
    await inject(handler, { body: event }); // a duplicate
    await inject(handler, { body: { type: 'identify', userId: 'u' } });
    await inject(handler, { body: { type: 'track', userId: 'u' } }); // 400
    await inject(handler, { body: trackEvent(), headers: segmentHeaders('nope') }); // 401
    await inject(handler, { body: { type: 'purchase', userId: 'u' } }); // 501, a type outside the spec
    await new Promise((r) => setImmediate(r)); // the last event's bookkeeping ends just after its answer
    const res = await inject(handler, { method: 'GET', url: '/metrics', headers: {} });
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'] ?? '', /^text\/plain; version=0\.0\.4/);
    const m = parse(res.body);
    assert.equal(m.get('segment_endpoint_requests_total{type="track",status="200"}'), 2);
    assert.equal(m.get('segment_endpoint_requests_total{type="identify",status="200"}'), 1);
    assert.equal(m.get('segment_endpoint_requests_total{type="track",status="400"}'), 1);
    assert.equal(m.get('segment_endpoint_requests_total{type="unknown",status="401"}'), 1);
    // A sender's own type never becomes a label: no series can be made up from outside.
    assert.equal(m.get('segment_endpoint_requests_total{type="unknown",status="501"}'), 1);
    assert.doesNotMatch(res.body, /purchase/);
    assert.equal(m.get('segment_endpoint_duplicates_total'), 1);
    assert.equal(m.get('segment_endpoint_request_duration_seconds_count'), 6);
    assert.equal(m.get('segment_endpoint_request_duration_seconds_bucket{le="+Inf"}'), 6);
    assert.equal(m.get('segment_endpoint_in_flight'), 0);
    // No store: the partner's handlers keep the events. Series of a store that is not there read as
    // zero events stored.
    assert.doesNotMatch(res.body, /segment_endpoint_store_/);
    const post = await inject(handler, { method: 'POST', url: '/metrics', headers: {} });
    assert.equal(post.status, 405);
  });

  test('copies of a messageId within one batch count as duplicates once their first is taken, not when it is refused', async () => {
    // A copy is answered as its first without running a handler: a duplicate, yet the counter missed it.
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      metricsPath: '/metrics',
      handlers: { track: (event) => (event.event === 'Later' ? Promise.resolve() : undefined) },
    });
    const duplicates = async () => {
      await new Promise((r) => setImmediate(r));
      const res = await inject(handler, { method: 'GET', url: '/metrics', headers: {} });
      return parse(res.body).get('segment_endpoint_duplicates_total');
    };
    const copies = [
      trackEvent({ messageId: 'b1' }),
      trackEvent({ messageId: 'b1' }),
      trackEvent({ messageId: 'b1' }),
    ];
    assert.equal((await inject(handler, { url: '/v1/batch', body: { batch: copies } })).status, 200);
    assert.equal(await duplicates(), 2);
    const later = [
      trackEvent({ messageId: 'b2', event: 'Later' }),
      trackEvent({ messageId: 'b2', event: 'Later' }),
    ];
    assert.equal((await inject(handler, { body: later })).status, 200);
    assert.equal(await duplicates(), 3, 'a copy of an event whose handler is asynchronous');
    const refused = [
      { type: 'track', userId: 'u', messageId: 'b3' },
      { type: 'track', userId: 'u', messageId: 'b3' },
    ];
    assert.equal((await inject(handler, { url: '/v1/batch', body: { batch: refused } })).status, 400);
    assert.equal(await duplicates(), 3, 'a copy of a refused event is refused, no duplicate');
  });

  test('handlers still running past their timeout are a gauge until they end, however late', async () => {
    // Answered 503 at the timeout, such a handler still holds its event: in_flight no longer counts it,
    // and an operator whose downstream hangs needs to see what memory is held for.
    let finish: () => void = () => {};
    const hung = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      metricsPath: '/metrics',
      handlerTimeoutMs: 30,
      handlers: { track: () => hung },
    });
    const overdue = async () => {
      const res = await inject(handler, { method: 'GET', url: '/metrics', headers: {} });
      return parse(res.body).get('segment_endpoint_handlers_overdue');
    };
    assert.equal(await overdue(), 0);
    for (let i = 0; i < 2; i++) assert.equal((await inject(handler, { body: trackEvent() })).status, 503);
    assert.equal(await overdue(), 2);
    // Past the five timeouts its event stays claimed for: still running, still counted.
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(await overdue(), 2);
    finish();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(await overdue(), 0);
  });

  test('a known type refused for this key (403) or without a handler (501) is counted under its type', async () => {
    const handler = createHandler({
      apiKeys: [{ key: API_KEY, types: ['track', 'page'] }],
      log: silentLogger,
      metricsPath: '/metrics',
      handlers: { track: () => {}, identify: () => {} },
    });
    assert.equal((await inject(handler, { body: { type: 'identify', userId: 'u' } })).status, 403);
    assert.equal((await inject(handler, { body: { type: 'page', userId: 'u' } })).status, 501);
    await new Promise((r) => setImmediate(r));
    const m = parse((await inject(handler, { method: 'GET', url: '/metrics', headers: {} })).body);
    assert.equal(m.get('segment_endpoint_requests_total{type="identify",status="403"}'), 1);
    assert.equal(m.get('segment_endpoint_requests_total{type="page",status="501"}'), 1);
  });

  test('off unless a path is set; a path that clashes is a RangeError', async () => {
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers: {} });
    assert.equal(handler.metrics, undefined);
    assert.equal((await inject(handler, { method: 'GET', url: '/metrics', headers: {} })).status, 404);
    assert.throws(
      () => createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers: {}, metricsPath: '/health' }),
      RangeError,
    );
  });

  test('the process: --metrics-path shows store fsyncs, --access-log writes one line per event without the key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-metrics-'));
    const run = spawnClean(process.execPath, [
      ...CLI,
      ...httpFlags('secret-key'),
      '--out',
      join(dir, 'out'),
      ...['--metrics-path', '/metrics', '--access-log'],
    ]);
    try {
      const url = (await waitFor(run.stdout, /listening on (\S+)/))[1] as string;
      for (let i = 0; i < 3; i++) {
        const res = await fetch(url, {
          method: 'POST',
          headers: segmentHeaders('secret-key'),
          body: JSON.stringify(trackEvent()),
        });
        assert.equal(res.status, 200);
      }
      // A target that carries the key itself (userinfo in an absolute-form target, a query parameter):
      // logged as it came, it wrote the key into the access log.
      const { port } = new URL(url);
      const body = JSON.stringify(trackEvent());
      const head = Object.entries({ ...segmentHeaders('secret-key'), 'content-length': body.length })
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join('');
      for (const [method, target] of [
        ['POST', `http://secret-key:@127.0.0.1:${port}/?writeKey=secret-key`],
        ['GET', `http://secret-key:@127.0.0.1:${port}/`],
      ]) {
        const answer = await rawRequest(
          Number(port),
          `${method} ${target} HTTP/1.1\r\nHost: a\r\n${head}\r\n${body}`,
        );
        assert.match(answer, method === 'POST' ? /^HTTP\/1\.1 200 / : /^HTTP\/1\.1 405 /);
      }
      const m = parse(await (await fetch(new URL('/metrics', url))).text());
      assert.equal(m.get('segment_endpoint_store_events_total'), 4);
      assert.ok((m.get('segment_endpoint_store_fsync_seconds_count') ?? 0) >= 1);
      const lines = run
        .stderr()
        .split('\n')
        .filter((l) => l.includes('"msg":"event"'));
      assert.equal(lines.length, 5);
      const entry = JSON.parse(lines[0] as string);
      assert.equal(entry.status, 200);
      assert.equal(entry.type, 'track');
      assert.match(entry.source, /^[0-9a-f]{12}$/);
      assert.deepEqual(
        lines.slice(3).map((line) => JSON.parse(line).path),
        ['/', '/'],
      );
      assert.doesNotMatch(run.stderr(), /secret-key/);
    } finally {
      run.child.kill('SIGTERM');
      await run.exit;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Sends `request` as is on a new connection to 127.0.0.1:`port`; resolves with what came back. */
function rawRequest(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(request));
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
      if (/\r\n\r\n/.test(answer)) socket.end();
    });
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
}
