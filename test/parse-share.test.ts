// Each key's share of the endpoint's time parsing bodies (`parseShare`, `--parse-share`): a customer whose
// bodies cost far more to parse than they weigh (600 bytes of gzip that inflate to 510 KB of `[{},{},…]`)
// is answered 429 past its share, and the other customers are not.
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { parseConfig } from '../src/config.ts';
import { createHandler, type HandlerOptions, silentLogger } from '../src/index.ts';
import { ParseShare } from '../src/limits.ts';
import { API_KEY, basic, segmentHeaders, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';

const handler = (options: Partial<HandlerOptions>) =>
  createHandler({
    apiKeys: [API_KEY, 'other-key'],
    log: silentLogger,
    handlers: { track: () => {} },
    ...options,
  });

/** 170,001 empty objects: ~510 KB to parse, in ~550 bytes of gzip. */
const COSTLY_TEXT = `[${'{},'.repeat(170_000)}{}]`;
const COSTLY = gzipSync(COSTLY_TEXT, { level: 9 });

const sendCostly = (h: ReturnType<typeof handler>) =>
  inject(h, { headers: { ...segmentHeaders(), 'content-encoding': 'gzip' }, body: COSTLY });

const sendEvent = (h: ReturnType<typeof handler>, key = API_KEY, n = 0) =>
  inject(h, {
    headers: { ...segmentHeaders(), authorization: basic(key) },
    body: trackEvent({ messageId: `m${n}` }),
  });

describe('ParseShare', () => {
  test("a second's worth at once, then let in while the bucket is not empty; refilled at the share", () => {
    let now = 0;
    const share = new ParseShare(50, () => now); // 500 ms of parsing a second, 500 at most
    share.admit('k');
    share.charge('k', 600); // -100 ms
    assert.throws(() => share.admit('k'), { code: 'SEG_PARSE_SHARE', status: 429, retryAfter: 1 });
    assert.doesNotThrow(() => share.admit('other'), 'another key has its own bucket');
    now += 200; // 0 ms: empty, still out
    assert.throws(() => share.admit('k'), { retryAfter: 1 });
    now += 1;
    share.admit('k');
    now += 10_000;
    share.charge('k', 499); // full again (500), then 1 left
    share.admit('k');
  });

  test('Retry-After is the wait for the debt; the debt is kept to a minute', () => {
    const share = new ParseShare(10, () => 0); // 100 ms a second
    share.charge('k', 100 + 350); // -350 ms: 3.5 s
    assert.throws(() => share.admit('k'), { retryAfter: 4 });
    share.charge('k', 1e9);
    assert.throws(() => share.admit('k'), { retryAfter: 60 });
  });
});

describe('parseShare through the handler', () => {
  test('a key whose bodies are costly to parse gets 429 SEG_PARSE_SHARE; another key does not', async () => {
    const h = handler({ parseShare: 1 }); // 10 ms of parsing a second
    const statuses: number[] = [];
    let refused: Awaited<ReturnType<typeof sendCostly>> | undefined;
    for (let i = 0; i < 50 && refused === undefined; i++) {
      const answer = await sendCostly(h);
      statuses.push(answer.status);
      if (answer.status === 429) refused = answer;
    }
    assert.ok(refused !== undefined, `never refused: ${statuses.join()}`);
    // Each refused for its events after its parse (too many), until the key has spent its share.
    assert.ok(
      statuses.slice(0, -1).every((s) => s === 413),
      statuses.join(),
    );
    assert.equal(refused.json().code, 'SEG_PARSE_SHARE');
    assert.match(refused.json().message ?? '', /share of the endpoint's time to parse/);
    assert.ok(Number(refused.headers['retry-after']) >= 1, refused.headers['retry-after']);
    assert.equal((await sendEvent(h, 'other-key')).status, 200);
    assert.equal((await sendEvent(h)).status, 429, 'the key itself waits out its debt, whatever it sends');
  });

  test('a body a framework read is charged as one read here', async () => {
    const h = handler({ parseShare: 1 });
    const statuses: number[] = [];
    for (let i = 0; i < 50 && !statuses.includes(429); i++) {
      const answer = await inject(h, { headers: segmentHeaders(), parsedBody: COSTLY_TEXT });
      statuses.push(answer.status);
    }
    assert.equal(statuses.at(-1), 429, statuses.join());
  });

  test('0 turns it off', async () => {
    const h = handler({ parseShare: 0 });
    for (let i = 0; i < 8; i++) assert.equal((await sendCostly(h)).status, 413);
  });

  test('the time a body takes to arrive is not charged, only its parse', async () => {
    const h = handler({ parseShare: 1 }); // 10 ms: a body that takes 300 ms to come would spend it all
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
      for (let i = 1; i <= 3; i++) assert.equal((await sendEvent(h, API_KEY, i)).status, 200);
    } finally {
      server.close();
    }
  });

  test('on by default, at half a core: ordinary events pass, a flood of costly bodies does not', async () => {
    const h = handler({});
    for (let i = 0; i < 50; i++) assert.equal((await sendEvent(h, API_KEY, i)).status, 200);
    // Each costly body parses in most of the time it takes through the injector: more than half of it.
    const started = performance.now();
    let sent = 0;
    while (sent < 400 && (await sendCostly(h)).status !== 429) sent++;
    assert.ok(sent < 400, `400 costly bodies in ${Math.round(performance.now() - started)} ms, none refused`);
    assert.equal((await sendEvent(h, 'other-key')).status, 200);
  });
});

test('the command line: --parse-share and SEGMENT_ENDPOINT_PARSE_SHARE', () => {
  const flag = parseConfig(['--http', '--api-key', 'k', '--parse-share', '20'], {});
  assert.equal(typeof flag === 'object' && flag.options.parseShare, 20);
  const env = parseConfig(['--http', '--api-key', 'k'], { SEGMENT_ENDPOINT_PARSE_SHARE: '0' });
  assert.equal(typeof env === 'object' && env.options.parseShare, 0);
  assert.throws(() => parseConfig(['--http', '--api-key', 'k', '--parse-share', '101'], {}), /parse-share/);
});
