// How long duplicates are suppressed: not at all with --idempotency-max-entries 0, and otherwise in a
// window bounded by count (--idempotency-max-entries) and by time (--idempotency-ttl).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { send } from './harness.ts';
import { agentOf, idempotencyFiles, KEY, stored, trackEvent, withEndpoint } from './idempotency-harness.ts';

const { figures, tempDir } = idempotencyFiles('idempotency.window');

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
