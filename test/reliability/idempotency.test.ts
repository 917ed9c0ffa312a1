import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { type Outcome, send } from './harness.ts';
import {
  agentOf,
  concurrently,
  countStatuses,
  idempotencyFiles,
  KEY,
  stored,
  trackEvent,
  withEndpoint,
} from './idempotency-harness.ts';

// Segment delivers at least once: the same event (same messageId) can come again, at once over several
// connections or later as a retry. Black box, against the real process: each event is processed once per
// API key, and a failed one is processed by its retry. Suppression turned off, and bounded by count and
// by time: idempotency-window.test.ts.

const OTHER_KEY = 'other-key';
const COPIES = 20;

const { figures, tempDir } = idempotencyFiles('idempotency');

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
