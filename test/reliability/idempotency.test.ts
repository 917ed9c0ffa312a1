import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { testCert } from '../helpers.ts';
import {
  type Endpoint,
  type Outcome,
  readStore,
  recordFigures,
  send,
  startEndpoint,
  tlsFlags,
} from './harness.ts';

// Segment delivers at least once: the same event (same messageId) can come again, at once over several
// connections or later as a retry. Black box, against the real process: each event is processed once per
// API key, a failed one is processed by its retry, and turning suppression off processes every copy.

const KEY = 'dev-key';
const OTHER_KEY = 'other-key';
const COPIES = 20;
const { cert } = testCert();
const dirs: string[] = [];
const figures: Record<string, unknown> = {};

after(() => {
  recordFigures('idempotency', figures);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-idem-'));
  dirs.push(dir);
  return dir;
}

/** Runs `body` against a fresh process; always stops it, and checks it drains cleanly. */
async function withEndpoint(
  dir: string,
  args: string[],
  body: (endpoint: Endpoint) => Promise<void>,
  env: NodeJS.ProcessEnv = {},
): Promise<void> {
  const endpoint = await startEndpoint([...tlsFlags(dir), '--log-level', 'warn', ...args], env);
  try {
    await body(endpoint);
  } finally {
    endpoint.child.kill('SIGTERM');
    const code = await endpoint.exit;
    assert.equal(code, 0, `the endpoint drains and exits 0:\n${endpoint.output()}`);
  }
}

const trackEvent = (messageId: string) => ({
  type: 'track',
  event: 'Order Completed',
  userId: 'u1',
  messageId,
  properties: { total: 42 },
});

const agentOf = () => new Agent({ keepAlive: true, maxSockets: 1, ca: cert });

/** Opens the agent's connection (TLS handshake included) before the test needs it. */
function warm(agent: Agent, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(new URL('/health', url), { agent, servername: 'localhost' }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    req.end();
  });
}

/** `copies` of one event at once, each over a connection of its own that is already open. */
async function concurrently(url: string, event: { messageId: string }, copies: number, key = KEY) {
  const agents = Array.from({ length: copies }, agentOf);
  try {
    await Promise.all(agents.map((agent) => warm(agent, url)));
    return await Promise.all(agents.map((agent) => send(agent, url, event, key)));
  } finally {
    for (const agent of agents) agent.destroy();
  }
}

function countStatuses(outcomes: Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) counts[o.status] = (counts[o.status] ?? 0) + 1;
  return counts;
}

type StoredRecord = { source?: string; event: { messageId?: string } };

function stored(out: string, messageId: string): StoredRecord[] {
  const { records, broken } = readStore(out);
  assert.equal(broken, 0, 'no torn lines in the store');
  return (records as StoredRecord[]).filter((r) => r.event.messageId === messageId);
}

test('the default store: one record per event and API key, however many copies arrive', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'data');
  await withEndpoint(dir, ['--out', out, '--api-key', KEY, '--api-key', OTHER_KEY], async (ep) => {
    const event = trackEvent(`idem-${Date.now()}`);

    // (a) Copies at once over separate connections: one is processed, the others wait for its outcome.
    const copies = await concurrently(ep.url, event, COPIES);
    const concurrentStatuses = countStatuses(copies);
    const afterConcurrent = stored(out, event.messageId).length;

    // (b) Later, one after another (Segment's retries of an event whose answer it missed).
    const agent = agentOf();
    const later: Outcome[] = [];
    try {
      for (let i = 0; i < 3; i++) later.push(await send(agent, ep.url, event, KEY));
    } finally {
      agent.destroy();
    }
    const afterSequential = stored(out, event.messageId).length;

    // (c) The same messageId from another API key (another tenant) is another event.
    const otherAgent = agentOf();
    const fromOther: Outcome[] = [];
    try {
      fromOther.push(await send(otherAgent, ep.url, event, OTHER_KEY));
      fromOther.push(await send(otherAgent, ep.url, event, OTHER_KEY));
    } finally {
      otherAgent.destroy();
    }
    const records = stored(out, event.messageId);

    Object.assign(figures, {
      concurrentCopies: COPIES,
      concurrentStatuses,
      storedAfterConcurrent: afterConcurrent,
      sequentialRepeats: later.length,
      storedAfterSequential: afterSequential,
      storedAcrossTwoKeys: records.length,
    });
    t.diagnostic(
      JSON.stringify({ concurrentStatuses, afterConcurrent, afterSequential, acrossKeys: records.length }),
    );

    assert.deepEqual(concurrentStatuses, { 200: COPIES }, 'every copy is answered 200');
    assert.equal(afterConcurrent, 1, 'the concurrent copies make one record');
    assert.deepEqual(
      later.map((o) => o.status),
      [200, 200, 200],
    );
    assert.equal(afterSequential, 1, 'later copies add no record');
    assert.deepEqual(
      fromOther.map((o) => o.status),
      [200, 200],
    );
    assert.equal(records.length, 2, 'one record per API key');
    assert.notEqual(records[0]?.source, records[1]?.source, 'the two records name different sources');
  });
});

// A partner handler that fails the first attempt of each event (a downstream blip) and succeeds after.
// Every attempt and every success is appended to a file, so the test sees what ran, not only the answers.
const FLAKY_HANDLERS = `import { appendFileSync } from 'node:fs';
const attempts = new Map();
export default {
  track(event) {
    const n = (attempts.get(event.messageId) ?? 0) + 1;
    attempts.set(event.messageId, n);
    appendFileSync(process.env.ATTEMPTS_LOG, event.messageId + '\\n');
    if (n === 1) throw Object.assign(new Error('downstream is down'), { status: 503 });
    appendFileSync(process.env.PROCESSED_LOG, event.messageId + '\\n');
  },
};
`;

const lines = (file: string, messageId: string) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((line) => line === messageId).length
    : 0;

test('a failed event is processed by its retry, and only once after that', async (t) => {
  const dir = tempDir();
  const handlers = join(dir, 'flaky-handlers.mjs');
  writeFileSync(handlers, FLAKY_HANDLERS);
  const attemptsLog = join(dir, 'attempts.log');
  const processedLog = join(dir, 'processed.log');
  const env = { ATTEMPTS_LOG: attemptsLog, PROCESSED_LOG: processedLog };
  await withEndpoint(
    dir,
    ['--handlers', handlers, '--api-key', KEY],
    async (ep) => {
      // (d) One copy at a time: 503 (Segment retries), then 200 and processed, then 200 without a run.
      const event = trackEvent(`retry-${Date.now()}`);
      const agent = agentOf();
      const answers: number[] = [];
      const processed: number[] = [];
      try {
        for (let i = 0; i < 3; i++) {
          answers.push((await send(agent, ep.url, event, KEY)).status);
          processed.push(lines(processedLog, event.messageId));
        }
      } finally {
        agent.destroy();
      }
      const attempts = lines(attemptsLog, event.messageId);

      // Copies at once of an event whose first attempt fails: the claim passes to one waiting copy,
      // which processes it; the rest are answered as duplicates.
      const racing = trackEvent(`retry-racing-${Date.now()}`);
      const copies = await concurrently(ep.url, racing, 10);
      const racingStatuses = countStatuses(copies);
      const racingProcessed = lines(processedLog, racing.messageId);
      const racingAttempts = lines(attemptsLog, racing.messageId);

      Object.assign(figures, {
        retryAnswers: answers.join(' '),
        processedAfterEach: processed.join(' '),
        handlerAttempts: attempts,
        failingConcurrentCopies: copies.length,
        failingConcurrentStatuses: racingStatuses,
        failingConcurrentProcessed: racingProcessed,
        failingConcurrentAttempts: racingAttempts,
      });
      t.diagnostic(
        JSON.stringify({ answers, processed, attempts, racingStatuses, racingProcessed, racingAttempts }),
      );

      assert.deepEqual(answers, [503, 200, 200], 'failed, then processed, then a duplicate');
      assert.deepEqual(processed, [0, 1, 1], 'processed once, by the retry');
      assert.equal(attempts, 2, 'the duplicate did not reach the handler');
      assert.deepEqual(racingStatuses, { 200: 9, 503: 1 }, 'only the failed attempt is answered 503');
      assert.equal(racingProcessed, 1, 'processed once among the concurrent copies');
      assert.equal(racingAttempts, 2, 'the failed attempt and the one that took over');
    },
    env,
  );
});

test('--idempotency-max-entries 0 turns suppression off: every copy is stored', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'data');
  await withEndpoint(dir, ['--out', out, '--api-key', KEY, '--idempotency-max-entries', '0'], async (ep) => {
    const event = trackEvent(`off-${Date.now()}`);
    const agent = agentOf();
    const answers: number[] = [];
    try {
      for (let i = 0; i < 2; i++) answers.push((await send(agent, ep.url, event, KEY)).status);
    } finally {
      agent.destroy();
    }
    const records = stored(out, event.messageId).length;
    Object.assign(figures, { suppressionOffAnswers: answers.join(' '), suppressionOffStored: records });
    t.diagnostic(JSON.stringify({ answers, records }));
    assert.deepEqual(answers, [200, 200]);
    assert.equal(records, 2, 'both copies stored');
  });
});

test('the window is bounded by count: past --idempotency-max-entries the oldest event is forgotten', async (t) => {
  const dir = tempDir();
  const out = join(dir, 'data');
  const args = ['--out', out, '--api-key', KEY, '--idempotency-max-entries', '2'];
  await withEndpoint(dir, args, async (ep) => {
    const stamp = Date.now();
    const [a, b, c] = ['a', 'b', 'c'].map((n) => trackEvent(`window-${n}-${stamp}`)) as [
      ReturnType<typeof trackEvent>,
      ReturnType<typeof trackEvent>,
      ReturnType<typeof trackEvent>,
    ];
    const agent = agentOf();
    const answers: number[] = [];
    let count: Record<string, number[]> = {};
    try {
      // a, b remembered; a again is a duplicate; c pushes a out (2 at most); a again is new and pushes
      // b out; b again is new. (The TTL is a day: only the count forgets here.)
      for (const event of [a, b, a, c, a]) answers.push((await send(agent, ep.url, event, KEY)).status);
      count = { a: [stored(out, a.messageId).length], b: [stored(out, b.messageId).length] };
      answers.push((await send(agent, ep.url, b, KEY)).status);
      count.b?.push(stored(out, b.messageId).length);
    } finally {
      agent.destroy();
    }
    Object.assign(figures, {
      windowAnswers: answers.join(' '),
      windowStoredA: count.a?.join(' '),
      windowStoredB: count.b?.join(' '),
    });
    t.diagnostic(JSON.stringify({ answers, count }));
    assert.deepEqual(answers, [200, 200, 200, 200, 200, 200]);
    assert.deepEqual(count.a, [2], 'a is stored again once evicted');
    assert.deepEqual(count.b, [1, 2], 'b is stored again once evicted');
  });
});

test('the window is bounded in time: past --idempotency-ttl an event is forgotten', async (t) => {
  const TTL_S = 2;
  const dir = tempDir();
  const out = join(dir, 'data');
  const args = ['--out', out, '--api-key', KEY, '--idempotency-ttl', String(TTL_S)];
  await withEndpoint(dir, args, async (ep) => {
    const event = trackEvent(`ttl-${Date.now()}`);
    const agent = agentOf();
    const answers: number[] = [];
    let storedAfterCopy = 0;
    const storedAt = Date.now();
    try {
      // A copy right behind the first, on the same open connection (milliseconds apart, against a
      // window of seconds), is a duplicate: the TTL is not zero.
      answers.push((await send(agent, ep.url, event, KEY)).status);
      answers.push((await send(agent, ep.url, event, KEY)).status);
      storedAfterCopy = stored(out, event.messageId).length;
      // Then copies until one is stored again: the first past the TTL is new. Waiting for that, not for
      // a time, keeps a slow machine from mattering; the guard only ends a wait that would never end.
      const until = Date.now() + 30_000;
      while (stored(out, event.messageId).length < 2) {
        assert.ok(Date.now() < until, `still remembered after ${answers.length} copies`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        answers.push((await send(agent, ep.url, event, KEY)).status);
      }
    } finally {
      agent.destroy();
    }
    const forgottenAfterMs = Date.now() - storedAt;
    Object.assign(figures, {
      ttlS: TTL_S,
      ttlCopies: answers.length,
      ttlStoredAfterFirstCopy: storedAfterCopy,
      ttlForgottenAfterMs: forgottenAfterMs,
    });
    t.diagnostic(JSON.stringify({ copies: answers.length, storedAfterCopy, forgottenAfterMs }));
    assert.deepEqual(answers, Array(answers.length).fill(200));
    assert.equal(storedAfterCopy, 1, 'the copy right behind the first is a duplicate');
    assert.equal(stored(out, event.messageId).length, 2, 'stored again once, when it was forgotten');
  });
});
