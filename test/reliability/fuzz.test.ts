import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { testCert } from '../helpers-cert.ts';
import {
  atLimit,
  bodyRandomBytes,
  deepJson,
  invalidUtf8,
  manyKeys,
  noBody,
  notAnObject,
  overLimit,
  protoKeys,
  truncatedJson,
  unknownKey,
  unknownType,
  wrongFieldTypes,
} from './fuzz-bodies.ts';
import { type Case, caseRng, type Generator, type HttpRequest, KEY, SEED, serialise } from './fuzz-cases.ts';
import { badBasic, badSettings, duplicateAuthorization, wrongContentType } from './fuzz-headers.ts';
import {
  garbledRequestLine,
  methodsAndPaths,
  oversizedHeaders,
  randomBytes,
  randomHeaders,
  tokenSoup,
  truncated,
} from './fuzz-http.ts';
import { smuggling } from './fuzz-smuggling.ts';
import { judge, overAgent, overRaw, preview } from './fuzz-transport.ts';
import { type Endpoint, MiB, readStore, recordFigures, send, startEndpoint, tlsFlags } from './harness.ts';

// Thousands of malformed requests, from broken bytes to broken events, against the real process. Each
// must be refused as the sender's fault (a 4xx with a JSON body, 501 for an unknown type) or cut off; none
// may crash the process, earn a 5xx, be accepted, or grow memory without bound.
//
// Every case is drawn from its own PRNG, seeded from the run's seed and the case's number, so one case
// replays alone whatever the concurrency: FUZZ_SEED=<seed> reruns a run, FUZZ_CASES=<n> sizes it.

const CASES = Number(process.env.FUZZ_CASES ?? 5000);
const CONCURRENCY = 8;
const CHECK_EVERY = 500;
const RSS_GROWTH_BOUND = 150 * MiB;

// Weights: the cheap generators often, the ones sending hundreds of KiB seldom.
const GENERATORS: Array<[Generator, number]> = [
  [randomBytes, 6],
  [tokenSoup, 6],
  [garbledRequestLine, 6],
  [truncated, 6],
  [randomHeaders, 6],
  [oversizedHeaders, 3],
  [smuggling, 10],
  [methodsAndPaths, 5],
  [duplicateAuthorization, 4],
  [badBasic, 6],
  [badSettings, 5],
  [wrongContentType, 4],
  [bodyRandomBytes, 5],
  [invalidUtf8, 4],
  [truncatedJson, 5],
  [notAnObject, 4],
  [deepJson, 4],
  [manyKeys, 1],
  [protoKeys, 6],
  [wrongFieldTypes, 8],
  [unknownType, 4],
  [overLimit, 1],
  [atLimit, 0.3],
  [noBody, 2],
  [unknownKey, 3],
];
const TOTAL_WEIGHT = GENERATORS.reduce((sum, [, w]) => sum + w, 0);

function generate(index: number): Case {
  const r = caseRng(index);
  let x = r.float() * TOTAL_WEIGHT;
  for (const [generator, weight] of GENERATORS) {
    x -= weight;
    if (x < 0) return generator(r);
  }
  return (GENERATORS[0] as [Generator, number])[0](r);
}

// ---------------------------------------------------------------------------------------------------

test("thousands of malformed requests: each refused as the sender's fault, none crashes or leaks", {
  timeout: 120_000,
}, async (t) => {
  t.diagnostic(`seed ${SEED} (rerun with FUZZ_SEED=${SEED}), ${CASES} cases`);
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-fuzz-'));
  const out = join(dir, 'data');
  const { cert } = testCert();
  let endpoint: Endpoint | undefined;
  const fuzzAgent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY, ca: cert });
  const checkAgent = new Agent({ keepAlive: true, maxSockets: 1, ca: cert });
  try {
    endpoint = await startEndpoint([...tlsFlags(dir), '--out', out, '--api-key', KEY, '--log-level', 'warn']);
    const ep = endpoint;
    let exitedEarly = false;
    ep.exit.then(() => {
      exitedEarly = true;
    });

    const checks: Array<{ afterCases: number; event: number; health: number; rssMiB: number }> = [];
    const checkIds: string[] = [];
    const checkAlive = async (afterCases: number) => {
      const messageId = `fuzz-alive-${checks.length}-after-${afterCases}`;
      checkIds.push(messageId);
      const alive = { type: 'track', event: 'Alive', userId: 'u1', messageId };
      const event = await send(checkAgent, ep.url, alive, KEY);
      const health = await new Promise<number>((resolve) => {
        const req = request(
          new URL('/health', ep.url),
          { agent: checkAgent, servername: 'localhost' },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', () => resolve(0));
        req.end();
      });
      checks.push({ afterCases, event: event.status, health, rssMiB: (ep.peakRss() ?? 0) / MiB });
    };
    await checkAlive(0);
    const baselineRss = ep.peakRss() ?? 0;

    const byOutcome: Record<string, number> = {};
    const byGenerator: Record<string, number> = {};
    const failures: string[] = [];
    let lateEnds = 0;
    let next = 0;
    let done = 0;
    let nextCheck = CHECK_EVERY;
    const started = Date.now();
    const worker = async () => {
      while (next < CASES && !exitedEarly) {
        const index = next++;
        const c = generate(index);
        const r = caseRng(index ^ 0x5bd1e995);
        const viaAgent = c.http !== undefined && !c.rawOnly && r.chance(0.5);
        const bytes = c.raw ?? serialise(c.http as HttpRequest);
        const outcome = viaAgent
          ? await overAgent(fuzzAgent, ep.port, c.http as HttpRequest)
          : await overRaw(ep.port, cert, bytes, c.end === true);
        const key = outcome.kind === 'answer' ? String(outcome.answer.status) : outcome.kind;
        byOutcome[key] = (byOutcome[key] ?? 0) + 1;
        const family = c.generator.split('/')[0] as string;
        byGenerator[family] = (byGenerator[family] ?? 0) + 1;
        if (outcome.kind !== 'stalled' && outcome.lateEnd) lateEnds++;
        const wrong = judge(c, outcome);
        if (wrong !== undefined) {
          failures.push(
            `case ${index} ${c.generator} (${viaAgent ? 'agent' : 'raw'}): ${wrong}; sent ${preview(c)}`,
          );
        }
        done++;
        if (done >= nextCheck) {
          nextCheck += CHECK_EVERY;
          await checkAlive(done);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    await checkAlive(done);
    const fuzzMs = Date.now() - started;
    const peakRss = ep.peakRss() ?? 0;

    const crashed = exitedEarly;
    ep.child.kill('SIGTERM');
    const exitCode = await ep.exit;
    const output = ep.output();
    const uncaught = (output.match(/"msg":"(uncaught exception|unhandled rejection)"/g) ?? []).length;
    const handlerFailures = (output.match(/"msg":"event handler failed"/g) ?? []).length;
    const stored = readStore(out);
    const storedIds = stored.records.map((rec) => rec.event.messageId);
    const fiveHundreds = Object.entries(byOutcome)
      // 501 (a type or transfer coding this endpoint does not take) and 505 (a request line garbled into
      // another HTTP version) refuse what the sender sent; any other 5xx would be ours.
      .filter(([k]) => /^5\d\d$/.test(k) && k !== '501' && k !== '505')
      .reduce((sum, [, n]) => sum + n, 0);

    const figures = {
      seed: SEED,
      cases: done,
      byOutcome,
      byGenerator,
      failures: failures.length,
      crashes: crashed ? 1 : 0,
      fiveHundreds,
      uncaughtLogged: uncaught,
      handlerFailuresLogged: handlerFailures,
      lateHalfCloses: lateEnds,
      aliveChecks: checks.length,
      rssAtChecksMiB: checks.map((c) => Math.round(c.rssMiB)).join(' '),
      storedRecords: stored.records.length,
      baselineRssMiB: Math.round(baselineRss / MiB),
      peakRssMiB: Math.round(peakRss / MiB),
      fuzzMs,
      exitCode,
    };
    t.diagnostic(JSON.stringify(figures));
    recordFigures('fuzz', figures);
    for (const f of failures.slice(0, 20)) t.diagnostic(f);

    assert.equal(done, CASES, 'every case ran (the process stayed up)');
    assert.deepEqual(failures.slice(0, 10), [], `seed ${SEED}: ${failures.length} cases answered wrongly`);
    assert.equal(fiveHundreds, 0);
    for (const check of checks) {
      assert.equal(check.event, 200, `a valid event after ${check.afterCases} cases`);
      assert.equal(check.health, 200, `/health after ${check.afterCases} cases`);
    }
    assert.equal(uncaught, 0, 'no uncaught exception or unhandled rejection was logged');
    assert.equal(handlerFailures, 0, 'no internal error was logged');
    assert.ok(
      peakRss - baselineRss < RSS_GROWTH_BOUND,
      `RSS grew ${Math.round((peakRss - baselineRss) / MiB)} MiB`,
    );
    assert.equal(exitCode, 0, 'a clean drain on SIGTERM');
    // Nothing malformed reached the store: exactly the liveness events did.
    assert.equal(stored.broken, 0);
    assert.deepEqual(storedIds.sort(), [...checkIds].sort());
  } finally {
    fuzzAgent.destroy();
    checkAgent.destroy();
    if (endpoint !== undefined && endpoint.child.exitCode === null && endpoint.child.signalCode === null) {
      endpoint.child.kill('SIGKILL');
      await endpoint.exit;
    }
    rmSync(dir, { recursive: true, force: true });
  }
});
