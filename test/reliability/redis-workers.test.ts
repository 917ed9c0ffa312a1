// --workers with --idempotency-redis: the workers share one duplicate filter, so Segment's retries of
// an event are stored once whichever worker each copy reaches; and Redis down is a 503, never a
// duplicate stored.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { trackEvent } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { type RedisServer, startRedis } from '../services/redis.ts';
import {
  cleanup,
  type Endpoint,
  health,
  readStore,
  send,
  startEndpoint,
  stopCleanly,
  tlsFlags,
} from './harness.ts';

let redis: RedisServer;
const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-redis-workers-'));
const endpoints: Endpoint[] = [];

before(async () => {
  redis = await startRedis();
});
after(async () => {
  await cleanup(dir, endpoints)();
  await redis?.destroy();
});

/** Each copy on a connection of its own: round-robin sends them to both workers. */
const copies = (ep: Endpoint, messageId: string, n: number) =>
  Promise.all(
    Array.from({ length: n }, () =>
      send(new Agent({ keepAlive: false, ca: testCert().cert }), ep.url, trackEvent({ messageId })),
    ),
  );

test('two workers store each event once, whichever worker each copy reaches', async () => {
  const out = join(dir, 'store');
  const args = [...tlsFlags(dir), '--api-key', 'dev-key', '--out', out, '--workers', '2'];
  const ep = await startEndpoint([...args, '--idempotency-redis', redis.url, '--metrics-path', '/metrics']);
  endpoints.push(ep);
  for (const id of ['r-1', 'r-2', 'r-3']) {
    const answers = await copies(ep, id, 6);
    assert.deepEqual(
      answers.map((a) => a.status === 200 || a.code === 'SEG_DUPLICATE_IN_FLIGHT'),
      answers.map(() => true),
      JSON.stringify(answers),
    );
    assert.ok(answers.some((a) => a.status === 200));
  }
  const metrics = await (await fetchMetrics(ep)).text();
  for (const worker of ['1', '2']) {
    assert.match(metrics, new RegExp(`segment_endpoint_worker_requests_total\\{worker="${worker}"\\} [1-9]`));
  }

  await redis.stop();
  const [down] = await copies(ep, 'r-4', 1);
  assert.equal(down?.status, 503);
  assert.equal(down?.code, 'SEG_IDEMPOTENCY_UNAVAILABLE');
  await redis.start();
  const deadline = Date.now() + 15_000;
  // Each worker reconnects on its own: healthy once answers in a row (from both workers) say so.
  let healthy = 0;
  while (healthy < 4 && Date.now() < deadline) {
    healthy = (await health(ep)) === 200 ? healthy + 1 : 0;
    await new Promise((r) => setTimeout(r, 50));
  }
  await stopCleanly(ep);

  const ids = readStore(out).records.map((r) => r.event.messageId);
  assert.deepEqual(ids.sort(), ['r-1', 'r-2', 'r-3'], 'each stored once, and r-4 not at all');
});

async function fetchMetrics(ep: Endpoint): Promise<{ text(): Promise<string> }> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(
      new URL('/metrics', ep.url),
      { ca: testCert().cert, servername: 'localhost' },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => {
          body += c.toString();
        });
        res.on('end', () => resolve({ text: async () => body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
