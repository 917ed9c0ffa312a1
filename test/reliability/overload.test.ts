// Load shedding: past --max-in-flight an event is answered 503 + Retry-After at once instead of
// waiting for a slot, so nothing queues without bound and memory stays bounded; the process stays up
// and its health check answers throughout.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { testCert, trackEvent } from '../helpers.ts';
import { type Endpoint, health, load, MiB, recordFigures, send, startEndpoint, tlsFlags } from './harness.ts';

const MAX_IN_FLIGHT = 16;
const HANDLER_MS = 300;
const CONNECTIONS = 200;
const MAX_REQUESTS = 600;
// Growth over the process's own start-up peak. What the burst may hold: 200 TLS connections (~40-100 KB
// each, so 8-20 MiB), 16 events in flight, and the idempotency map of a few hundred ids (KBs).
// 100 MiB leaves room for V8's heap growing lazily under GC pressure on a busy machine.
const MAX_GROWTH_BYTES = 100 * MiB;
// Absolute: Node plus tsx compiling the sources on the fly already takes ~100 MiB before any event.
const MAX_PEAK_BYTES = 250 * MiB;

/** The 50th percentile of a list of numbers (undefined when empty). */
function median(values: number[]): number | undefined {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

test('above --max-in-flight: 503 SEG_OVERLOADED with Retry-After at once, memory bounded, still serving', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-overload-'));
  let ep: Endpoint | undefined;
  t.after(async () => {
    if (ep !== undefined && ep.child.exitCode === null && ep.child.signalCode === null) {
      ep.child.kill('SIGKILL');
      await ep.exit;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  // Each handler logs how many handlers run alongside it when it starts: the limit, seen from inside.
  const concurrency = join(dir, 'concurrency.log');
  const module = join(dir, 'handlers.mjs');
  writeFileSync(
    module,
    `import { appendFileSync } from 'node:fs';
let running = 0;
export default {
  async track() {
    running++;
    appendFileSync(${JSON.stringify(concurrency)}, running + '\\n');
    try {
      await new Promise((done) => setTimeout(done, ${HANDLER_MS}));
    } finally {
      running--;
    }
  },
};
`,
  );
  ep = await startEndpoint([
    ...tlsFlags(dir),
    '--api-key',
    'dev-key',
    '--handlers',
    module,
    '--max-in-flight',
    String(MAX_IN_FLIGHT),
  ]);
  const endpoint = ep;
  assert.equal(await health(endpoint), 200);
  const baseline = endpoint.peakRss();
  assert.ok(baseline !== undefined, 'VmHWM is readable');

  let loading = true;
  const burst = load({
    url: endpoint.url,
    connections: CONNECTIONS,
    maxRequests: MAX_REQUESTS,
    event: (n) => trackEvent({ messageId: `overload-${n}` }),
  }).finally(() => {
    loading = false;
  });
  // Health is not an event: it answers while every slot is taken. Asked one at a time until the burst ends.
  const healthDuringBurst: number[] = [];
  while (loading && healthDuringBurst.length < 100) {
    const status = await health(endpoint);
    if (loading) healthDuringBurst.push(status);
    await new Promise((done) => setTimeout(done, 50));
  }
  const answers = await burst;

  const agent = new Agent({ keepAlive: false, ca: testCert().cert });
  const after = await send(agent, endpoint.url, trackEvent({ messageId: 'after-burst' }));
  agent.destroy();
  const peak = endpoint.peakRss();
  assert.ok(peak !== undefined, 'the process is still running');
  endpoint.child.kill('SIGTERM');
  const exitCode = await endpoint.exit;

  const ok = answers.filter((a) => a.status === 200);
  const shed = answers.filter((a) => a.status === 503);
  const other = answers.filter((a) => a.status !== 200 && a.status !== 503);
  const firstOkAt = Math.min(...ok.map((a) => a.doneAt));
  const shedBeforeFirstOk = shed.filter((a) => a.doneAt < firstOkAt).length;
  const running = readFileSync(concurrency, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map(Number);
  const figures = {
    sent: answers.length,
    ok: ok.length,
    shed: shed.length,
    otherErrors: other.length,
    shedBeforeFirstOk,
    shedLatencyP50Ms: median(shed.map((a) => a.doneAt - a.sentAt)),
    okLatencyP50Ms: median(ok.map((a) => a.doneAt - a.sentAt)),
    maxConcurrentHandlers: Math.max(...running),
    healthChecksDuringBurst: healthDuringBurst.length,
    afterBurstStatus: after.status,
    baselineRssMiB: Math.round(baseline / MiB),
    peakRssMiB: Math.round(peak / MiB),
    growthMiB: Math.round((peak - baseline) / MiB),
    exitCode,
  };
  recordFigures('overload.shedding', figures);
  t.diagnostic(JSON.stringify(figures));

  assert.equal(answers.length, MAX_REQUESTS);
  assert.deepEqual(
    other.map((a) => `${a.id}: ${a.status} ${a.error ?? ''}`),
    [],
    'only 200 and 503: no other status, no network error',
  );
  assert.ok(ok.length > 0, 'events within the limit are processed');
  assert.ok(shed.length > 0, 'events past the limit are shed');
  for (const a of shed) {
    assert.equal(a.code, 'SEG_OVERLOADED', a.id);
    assert.equal(a.retryAfter, '1', a.id);
  }
  // Shed at once, not queued for a slot: refusals came back while the first events were still running.
  assert.ok(shedBeforeFirstOk > 0, 'some 503s were answered before any event finished');
  // Every accepted event ran (and the one after the burst), never more at once than the limit.
  assert.equal(running.length, ok.length + 1);
  assert.ok(figures.maxConcurrentHandlers <= MAX_IN_FLIGHT, `${figures.maxConcurrentHandlers} ran at once`);

  assert.ok(healthDuringBurst.length > 0, 'health was asked during the burst');
  assert.deepEqual(
    healthDuringBurst.filter((s) => s !== 200),
    [],
    'health answers 200 throughout',
  );
  assert.equal(after.status, 200, 'a normal event after the burst is processed');
  assert.equal(exitCode, 0, endpoint.output());
  assert.ok(peak - baseline < MAX_GROWTH_BYTES, `grew ${figures.growthMiB} MiB over the start-up peak`);
  assert.ok(peak < MAX_PEAK_BYTES, `peak ${figures.peakRssMiB} MiB`);
});
