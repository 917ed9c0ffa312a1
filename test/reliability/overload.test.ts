// Load shedding: past --max-in-flight an event is answered 503 + Retry-After at once instead of
// waiting for a slot, so nothing queues without bound and memory stays bounded; the process stays up
// and its health check answers throughout.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { trackEvent } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { waitUntil } from '../helpers-wait.ts';
import { type Endpoint, health, load, MiB, recordFigures, send, startEndpoint, tlsFlags } from './harness.ts';

const MAX_IN_FLIGHT = 16;
const CONNECTIONS = 200;
const HEALTH_CHECKS = 5;
const MAX_REQUESTS = 600;
// Growth over the process's own start-up peak. What the burst may hold: 200 TLS connections (~40-100 KB
// each, so 8-20 MiB), 16 events in flight, and the idempotency map of a few hundred ids (KBs).
// 100 MiB leaves room for V8's heap growing lazily under GC pressure on a busy machine.
const MAX_GROWTH_BYTES = 100 * MiB;
// Absolute: Node and the CLI's modules take ~60 MiB before any event (~90 through tsx, which compiles the
// sources on the fly when test-build/ is stale): the bound leaves the burst at least ~130 MiB above it.
const MAX_PEAK_BYTES = 220 * MiB;

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
  // Handlers are held until the process gets SIGUSR2: while held, every slot is taken for as long as
  // the test needs, however slow the machine.
  const concurrency = join(dir, 'concurrency.log');
  const module = join(dir, 'handlers.mjs');
  writeFileSync(
    module,
    `import { appendFileSync } from 'node:fs';
let running = 0;
let released = false;
const held = [];
process.once('SIGUSR2', () => {
  released = true;
  for (const release of held.splice(0)) release();
});
export default {
  async track() {
    running++;
    appendFileSync(${JSON.stringify(concurrency)}, running + '\\n');
    try {
      if (!released) await new Promise((release) => held.push(release));
    } finally {
      running--;
    }
  },
};
`,
  );
  const running = () =>
    existsSync(concurrency)
      ? readFileSync(concurrency, 'utf8')
          .split('\n')
          .filter((line) => line !== '')
          .map(Number)
      : [];
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

  let shedWhileHeld = 0;
  let holding = true;
  const burst = load({
    url: endpoint.url,
    connections: CONNECTIONS,
    maxRequests: MAX_REQUESTS,
    event: (n) => trackEvent({ messageId: `overload-${n}` }),
    onAnswer: (a) => {
      if (a.status === 503 && holding) shedWhileHeld++;
    },
  });
  // Shed at once, not queued for a slot: 503s come back while every slot is held. (Were events past the
  // limit queued instead, none would come; the guard ends that wait.)
  await waitUntil(
    () => shedWhileHeld > 0 && running().length >= MAX_IN_FLIGHT,
    () => `a 503 while ${MAX_IN_FLIGHT} handlers are held (${running().length} running)`,
    30_000,
  );
  // Health is not an event: it answers while every slot is taken.
  const healthDuringBurst: number[] = [];
  for (let i = 0; i < HEALTH_CHECKS; i++) healthDuringBurst.push(await health(endpoint));
  holding = false;
  endpoint.child.kill('SIGUSR2');
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
  const figures = {
    sent: answers.length,
    ok: ok.length,
    shed: shed.length,
    otherErrors: other.length,
    shedWhileHeld,
    shedLatencyP50Ms: median(shed.map((a) => a.doneAt - a.sentAt)),
    okLatencyP50Ms: median(ok.map((a) => a.doneAt - a.sentAt)),
    maxConcurrentHandlers: Math.max(...running()),
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
  assert.ok(shedWhileHeld > 0, 'some 503s were answered while the events within the limit were held');
  // Every accepted event ran (and the one after the burst), never more at once than the limit.
  assert.equal(running().length, ok.length + 1);
  assert.ok(figures.maxConcurrentHandlers <= MAX_IN_FLIGHT, `${figures.maxConcurrentHandlers} ran at once`);

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
