// Each key's share of the event loop (`cpuShare`, `--cpu-share`): a customer whose requests cost far more
// than they weigh (49 bytes of gzip that inflate to 2,500 events to refuse one by one) is answered 429
// past its share while another key waits, and the other customers are not. Alone, or with time to spare,
// a key takes what it needs.
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { acceptBatch } from '../src/batch.ts';
import { parseConfig } from '../src/config.ts';
import { createHandler, type HandlerOptions, silentLogger } from '../src/index.ts';
import { CpuShare } from '../src/limits.ts';
import { API_KEY, basic, segmentHeaders, trackEvent } from './helpers.ts';
import { type InjectResponse, inject } from './helpers-inject.ts';

type Handler = ReturnType<typeof createHandler>;

const handler = (options: Partial<HandlerOptions>) =>
  createHandler({
    apiKeys: [API_KEY, 'other-key'],
    log: silentLogger,
    handlers: { track: () => {} },
    ...options,
  });

/** 2,500 events, each refused on its own (no type): ~15 ms of work, from ~50 bytes of gzip. */
const COSTLY = gzipSync(`[${'{},'.repeat(2_499)}{}]`, { level: 9 });

const sendCostly = (h: Handler, key = API_KEY) =>
  inject(h, {
    headers: { ...segmentHeaders(), authorization: basic(key), 'content-encoding': 'gzip' },
    body: COSTLY,
  });

const sendEvent = (h: Handler, key = API_KEY, n = 0) =>
  inject(h, {
    headers: { ...segmentHeaders(), authorization: basic(key) },
    body: trackEvent({ messageId: `m${key}${n}` }),
  });

/**
 * Rounds of three costly requests from `costlyKey` beside one event of `otherKey`, all at once, until
 * `stop` says so or `rounds` are sent: the event loop is busy and both keys are let in.
 */
async function contend(
  h: Handler,
  rounds: number,
  stop: (round: InjectResponse[]) => boolean,
  costlyKey = API_KEY,
  otherKey = 'other-key',
) {
  const answers: InjectResponse[][] = [];
  for (let r = 0; r < rounds; r++) {
    const round = await Promise.all([
      sendCostly(h, costlyKey),
      sendCostly(h, costlyKey),
      sendCostly(h, costlyKey),
      sendEvent(h, otherKey, r),
    ]);
    answers.push(round);
    if (stop(round)) break;
  }
  return answers;
}

describe('CpuShare', () => {
  const BUSY = () => 1;

  test('a key past its share is refused only while the loop is busy and another key was let in within a second', () => {
    let now = 0;
    let utilization = 1;
    const share = new CpuShare(
      50,
      () => now,
      () => utilization,
    ); // 500 ms a second, 500 at most
    share.settle('a', share.admit('a'), 0);
    share.charge('a', 2_000, false); // -1,500 ms
    now = 10;
    share.admit('a'); // alone: nobody to protect
    now = 20;
    share.admit('b');
    now = 30;
    assert.throws(() => share.admit('a'), { code: 'SEG_CPU_SHARE', status: 429, retryAfter: 3 });
    now = 200;
    utilization = 0.5; // the last tenth of a second had time to spare
    share.admit('a');
    utilization = 1;
    now = 300;
    assert.throws(() => share.admit('a'));
    now = 1_400; // still -800 ms, but no other key for over a second
    share.admit('a');
  });

  test('a burst is let in on what its requests cost lately, not all on one full bucket', () => {
    let now = 0;
    const share = new CpuShare(50, () => now, BUSY);
    share.admit('other');
    for (let i = 0; i < 20; i++) share.settle('a', share.admit('a'), 100); // each costs 100 ms
    now = 1_000; // full again
    share.admit('other');
    const reserved: number[] = [];
    for (let i = 0; i < 50; i++) {
      try {
        reserved.push(share.admit('a'));
      } catch {
        // refused
      }
    }
    assert.ok(reserved.length >= 5 && reserved.length <= 6, `${reserved.length} of 50 let in`);
    for (const r of reserved) share.settle('a', r, 100); // what was set aside comes back as each ends
    share.charge('a', 400, false);
    assert.doesNotThrow(() => share.admit('a'), '500 - 400 ms: the reservations were given back');
  });

  test('in debt, on time to spare, no more at once than that time holds', () => {
    let now = 0;
    let utilization = 1;
    const share = new CpuShare(
      50,
      () => now,
      () => utilization,
    );
    share.admit('other');
    for (let i = 0; i < 30; i++) share.settle('slow', share.admit('slow'), 20); // ~20 ms each
    for (let i = 0; i < 30; i++) share.settle('quick', share.admit('quick'), 1); // ~1 ms each
    share.charge('slow', 2_000, false);
    share.charge('quick', 2_000, false);
    share.admit('other');
    now = 100;
    utilization = 0.5;
    const slow = share.admit('slow');
    assert.throws(() => share.admit('slow'), { code: 'SEG_CPU_SHARE' }, 'one of 20 ms fills the 10 ms spare');
    share.settle('slow', slow, 20);
    share.admit('slow');
    let quick = 0;
    for (let i = 0; i < 20; i++) {
      try {
        share.admit('quick');
        quick++;
      } catch {
        // refused
      }
    }
    assert.ok(quick >= 9 && quick <= 11, `${quick} of 1 ms each let in at once on 10 ms to spare`);
  });

  test('Retry-After is the wait for the debt; the debt is kept to a minute', () => {
    const share = new CpuShare(10, () => 0, BUSY); // 100 ms a second
    share.admit('other');
    share.admit('k');
    share.charge('k', 450, false); // -350 ms: 3.5 s
    assert.throws(() => share.admit('k'), { retryAfter: 4 });
    share.charge('k', 1e9, false);
    assert.throws(() => share.admit('k'), { retryAfter: 60 });
  });
});

test("a batch's slices after the first are each told when they began, as they end", async () => {
  const began: number[] = [];
  const events = Array.from({ length: 200 }, (_, i) => trackEvent({ messageId: `s${i}` }));
  const before = performance.now();
  await acceptBatch(
    { batch: true, events, context: undefined } as never,
    2,
    1e9,
    () => ({ status: 200 }),
    () => {},
    (at) => began.push(at),
  );
  assert.equal(began.length, 3, 'events 64-127, 128-191, 192-199: the first slice runs in its caller');
  assert.ok(began.every((at) => at >= before));
});

describe('cpuShare through the handler', () => {
  test('a key whose requests are costly gets 429 SEG_CPU_SHARE while another waits; the other does not', async () => {
    const h = handler({ cpuShare: 1 }); // 10 ms a second
    const rounds = await contend(h, 40, (round) => round.some((a) => a.status === 429));
    const costly = rounds.flatMap((round) => round.slice(0, 3));
    const refused = costly.find((a) => a.status === 429);
    assert.ok(refused !== undefined, `never refused: ${costly.map((a) => a.status).join()}`);
    assert.equal(refused.json().code, 'SEG_CPU_SHARE');
    assert.ok(Number(refused.headers['retry-after']) >= 1, refused.headers['retry-after']);
    assert.deepEqual(new Set(costly.map((a) => a.status)), new Set([400, 429]));
    assert.deepEqual(
      rounds.map((round) => round[3]?.status),
      rounds.map(() => 200),
      'the other key is never refused',
    );
  });

  test('a key alone is never refused, however costly: there is nobody to protect', async () => {
    const h = handler({ cpuShare: 1 });
    for (let i = 0; i < 5; i++) {
      const answers = await Promise.all([sendCostly(h), sendCostly(h), sendCostly(h)]);
      assert.deepEqual(
        answers.map((a) => a.status),
        [400, 400, 400],
      );
    }
  });

  test('the time a body takes to arrive is not charged, only the processing', async () => {
    const h = handler({ cpuShare: 1 }); // 10 ms: a body that takes 300 ms to come would spend it all
    const server = createServer(h).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const text = JSON.stringify(trackEvent({ messageId: 'slow' }));
      const answered = new Promise<number | undefined>((resolve, reject) => {
        const req = request({ port, method: 'POST', headers: segmentHeaders() }, (res) => {
          res.resume();
          resolve(res.statusCode);
        });
        req.on('error', reject);
        req.write(text.slice(0, 10));
        setTimeout(() => req.write(text.slice(10, 20)), 150);
        setTimeout(() => req.end(text.slice(20)), 300);
      });
      assert.equal(await answered, 200);
    } finally {
      server.close();
    }
    // Then the loop is kept busy by the other key, API_KEY beside it: its bucket still holds time.
    const rounds = await contend(h, 6, () => false, 'other-key', API_KEY);
    assert.deepEqual(
      rounds.map((round) => round[3]?.status),
      rounds.map(() => 200),
    );
  });

  test('on by default, at half the loop; 0 turns it off', async () => {
    const on = await contend(handler({}), 200, (round) => round.some((a) => a.status === 429));
    assert.ok(on.length < 200, 'a flood of costly requests beside another key was never refused');
    const off = await contend(handler({ cpuShare: 0 }), 10, () => false);
    assert.ok(off.flat().every((a) => a.status !== 429));
  });
});

test('the command line: --cpu-share and SEGMENT_ENDPOINT_CPU_SHARE', () => {
  const flag = parseConfig(['--http', '--api-key', 'k', '--cpu-share', '20'], {});
  assert.equal(typeof flag === 'object' && flag.options.cpuShare, 20);
  const env = parseConfig(['--http', '--api-key', 'k'], { SEGMENT_ENDPOINT_CPU_SHARE: '0' });
  assert.equal(typeof env === 'object' && env.options.cpuShare, 0);
  assert.throws(() => parseConfig(['--http', '--api-key', 'k', '--cpu-share', '101'], {}), /cpu-share/);
});
