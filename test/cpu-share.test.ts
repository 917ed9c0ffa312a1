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
import { CpuShare, type SharedRequest } from '../src/cpu-share.ts';
import type { createHandler } from '../src/index.ts';
import { API_KEY, basic, segmentHeaders, trackEvent, twoKeyHandler } from './helpers.ts';
import { type InjectResponse, inject } from './helpers-inject.ts';

type Handler = ReturnType<typeof createHandler>;

const handler = twoKeyHandler;

/** 2,500 events, each refused on its own (no type): a few ms of work, from ~50 bytes of gzip. */
const COSTLY = gzipSync(`[${'{},'.repeat(2_499)}{}]`, { level: 9 });
/** 510 KB of `[{},{},…]`, refused as too many events once parsed: ~15-20 ms, from ~550 bytes. */
const COSTLIER = gzipSync(`[${'{},'.repeat(170_000)}{}]`, { level: 9 });

const sendCostly = (h: Handler, key = API_KEY, body = COSTLY) =>
  inject(h, {
    headers: { ...segmentHeaders(), authorization: basic(key), 'content-encoding': 'gzip' },
    body,
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
  { costlyKey = API_KEY, otherKey = 'other-key', body = COSTLY } = {},
) {
  const answers: InjectResponse[][] = [];
  for (let r = 0; r < rounds; r++) {
    const round = await Promise.all([
      sendCostly(h, costlyKey, body),
      sendCostly(h, costlyKey, body),
      sendCostly(h, costlyKey, body),
      sendEvent(h, otherKey, r),
    ]);
    answers.push(round);
    if (stop(round)) break;
  }
  return answers;
}

describe('CpuShare', () => {
  const BUSY = () => 1;
  /** A share of `percent` on a clock and a loop the test sets. */
  const clocked = (percent: number) => {
    const at = { now: 0, utilization: 1 };
    return {
      at,
      share: new CpuShare(
        percent,
        () => at.now,
        () => at.utilization,
      ),
    };
  };

  test('a key past its share is refused only while the loop is busy and another key came within 10 s', () => {
    const { at, share } = clocked(50); // 500 ms a second, 500 at most
    assert.equal(share.admit('a'), -1, 'alone: not followed, nothing set aside');
    at.now = 10;
    share.admit('b');
    at.now = 20;
    share.charge('a', 20_000); // -19,495 ms
    at.now = 30;
    assert.throws(() => share.admit('a'), { code: 'SEG_CPU_SHARE', status: 429, retryAfter: 39 });
    at.now = 200;
    at.utilization = 0.5; // the time since the last look had some to spare
    share.admit('a');
    at.utilization = 1;
    at.now = 300;
    assert.throws(() => share.admit('a'));
    at.now = 10_100; // still ~14 s in debt, but b not seen for 10 s: alone
    share.admit('a');
  });

  test('time a key takes alone is not owed once another comes', () => {
    let now = 0;
    const share = new CpuShare(50, () => now, BUSY);
    share.admit('a');
    share.charge('a', 5_000); // alone: down to 0, not -4,500
    now = 10;
    share.admit('b');
    now = 20;
    share.admit('a'); // 10 ms earned since
  });

  test('a burst is let in on what its requests cost lately, not all on one full bucket', () => {
    let now = 0;
    const share = new CpuShare(50, () => now, BUSY);
    share.admit('other');
    share.settle('a', share.admit('a'), 100); // costs 100 ms: learnt at once
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
    assert.deepEqual(reserved, [100, 100, 100, 100, 100], '500 ms set aside, 100 at a time');
    for (const r of reserved) share.settle('a', r, 10); // what was set aside comes back as each ends
    share.charge('a', 400);
    const estimate = share.admit('a');
    assert.ok(
      Math.abs(estimate - (10 + 0.8 ** 5 * 90)) < 1e-9,
      `the estimate falls a fifth of the way each time: ${estimate}`,
    );
  });

  test('a burst let in together is looked at again once each body came', () => {
    const share = new CpuShare(50, () => 0, BUSY);
    share.admit('other');
    const burst = [share.admit('a'), share.admit('a'), share.admit('a')]; // nothing learnt yet: all in
    share.charge('a', 600); // the first one's work
    assert.throws(() => share.proceed('a', burst[1] as number), { code: 'SEG_CPU_SHARE' });
    const quiet = new CpuShare(
      50,
      () => 0,
      () => 0.5,
    );
    quiet.admit('other');
    const r = quiet.admit('a');
    quiet.charge('a', 600);
    assert.doesNotThrow(() => quiet.proceed('a', r), 'with time to spare it goes on');
  });

  test('a request looked at again is not held back by what was set aside for it', () => {
    const share = new CpuShare(50, () => 0, BUSY);
    share.admit('other');
    share.settle('a', share.admit('a'), 100);
    const burst = [0, 1, 2, 3, 4].map(() => share.admit('a')); // 5 × 100 ms set aside: the bucket's 500
    assert.throws(() => share.admit('a'));
    share.proceed('a', burst[0] as number); // 500 - 400 set aside for the others
  });

  test('a request is settled once, at the end of the turn that answered it; refusals teach nothing', () => {
    let now = 0;
    const share = new CpuShare(50, () => now, BUSY);
    share.admit('other');
    const request = (): { -readonly [K in keyof SharedRequest]: SharedRequest[K] } => ({
      apiKey: 'a',
      answered: false,
      followed: true,
      reserved: share.admit('a'),
      worked: false,
      spent: 0,
      inTurn: false,
    });
    const x = request();
    x.inTurn = true;
    x.worked = true;
    now = 5;
    x.answered = true;
    share.answered(x); // in its turn: not yet
    share.turnEnded(x, 0); // 5 ms: charged, given back, learnt
    share.answered(x);
    assert.equal(share.admit('a'), 5, 'learnt once, from its turn');
    const refused = request(); // refused before its body came: given back, not learnt
    refused.spent = 0.1;
    refused.answered = true;
    share.answered(refused);
    assert.equal(share.admit('a'), 5);
  });

  test('in debt, on time to spare, no more at once than that time holds', () => {
    const { at, share } = clocked(50);
    share.settle('slow', share.admit('slow'), 20);
    share.settle('quick', share.admit('quick'), 1);
    share.admit('other');
    share.charge('slow', 2_000);
    share.charge('quick', 2_000);
    at.now = 100;
    at.utilization = 0.5;
    const slow = share.admit('slow');
    assert.throws(
      () => share.admit('slow'),
      { code: 'SEG_CPU_SHARE' },
      'two of 20 ms overfill the 10 ms spare',
    );
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
    assert.equal(quick, 10, 'ten of 1 ms at once on 10 ms to spare');
  });

  test('Retry-After is the wait for the debt; the debt is kept to a minute', () => {
    const share = new CpuShare(10, () => 0, BUSY); // 100 ms a second
    share.admit('other');
    share.admit('k');
    share.charge('k', 450); // -350 ms: 3.5 s
    assert.throws(() => share.admit('k'), { retryAfter: 4 });
    const set = new CpuShare(10, () => 0, BUSY);
    set.admit('other');
    set.settle('k', set.admit('k'), 100);
    set.admit('k'); // 100 ms set aside
    set.charge('k', 250); // -150 ms, and 100 set aside: 2.5 s
    assert.throws(() => set.admit('k'), { retryAfter: 3 });
    share.charge('k', 1e9);
    assert.throws(() => share.admit('k'), { retryAfter: 60 });
  });
});

test("a batch's slices after the first are each told when they began, as they end", async () => {
  const began: number[] = [];
  const events = Array.from({ length: 200 }, (_, i) => trackEvent({ messageId: `s${i}` }));
  await acceptBatch(
    { batch: true, events, context: undefined } as never,
    2,
    1e9,
    () => {},
    () => ({ status: 200 }),
    () => {},
    (at) => began.push(at),
  );
  assert.equal(began.length, 3, 'events 64-127, 128-191, 192-199: the first slice runs in its caller');
  assert.deepEqual(
    [...began].sort((a, b) => a - b),
    began,
    'in the order they ran',
  );
});

describe('cpuShare through the handler', () => {
  test('a key whose requests are costly gets 429 SEG_CPU_SHARE while another waits; the other does not', async () => {
    // 50 ms a second: the other key's events take far less, with room for a GC pause in their turns.
    const h = handler({ cpuShare: 5 });
    const rounds = await contend(h, 100, (round) => round.some((a) => a.status === 429));
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
    const h = handler({ cpuShare: 5 }); // 50 ms: a body that takes 300 ms to come would spend it all
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
    // Charged 300 ms, the key would have learnt its requests cost 300 ms, and the second of two at once
    // would be refused: another key came, the 50 ms bucket cannot hold both, nor 10 ms spare time.
    assert.equal((await sendEvent(h, 'other-key')).status, 200);
    const pair = await Promise.all([sendEvent(h, API_KEY, 1), sendEvent(h, API_KEY, 2)]);
    assert.deepEqual(
      pair.map((a) => a.status),
      [200, 200],
    );
  });

  test('on by default, at half the loop; 0 turns it off', async () => {
    const refused = (round: InjectResponse[]) => round.some((a) => a.status === 429);
    const on = await contend(handler({}), 300, refused, { body: COSTLIER });
    assert.ok(on.length < 300, 'a flood of costly requests beside another key was never refused');
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
