import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createHandler, NdjsonStore, silentLogger } from '../src/index.ts';
import { parseJson } from '../src/json.ts';
import { nestsDeeper } from '../src/json-walks.ts';
import { API_KEY, basic, segmentHeaders, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';
import { countdown, gate } from './helpers-wait.ts';

const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const deepEvent = (depth: number) =>
  `{"type":"track","event":"x","userId":"u","properties":{"a":${nested(depth - 2)}}}`;

describe('nesting depth', () => {
  test('at the limit passes, one level over is refused', () => {
    assert.equal(nestsDeeper(nested(64), 64), false);
    assert.equal(nestsDeeper(nested(65), 64), true);
    assert.equal(parseJson(nested(65)).ok, false);
    const refused = parseJson(nested(100_000));
    assert.equal(refused.ok === false && refused.code, 'SEG_TOO_DEEP');
  });

  test('brackets inside strings, and many siblings, are not depth', () => {
    const text = JSON.stringify({ s: '[[[[{{{{'.repeat(100), list: Array.from({ length: 200 }, () => ({})) });
    assert.equal(nestsDeeper(text, 64), false);
    assert.equal(nestsDeeper(JSON.stringify({ s: 'a\\"[[[[' }), 2), false);
  });

  test('in the pipeline: 400 SEG_TOO_DEEP, for raw and framework-parsed bodies alike', async () => {
    const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers: { track: () => {} } });
    assert.equal((await inject(handler, { body: deepEvent(64) })).status, 200);
    const raw = await inject(handler, { body: deepEvent(65) });
    assert.equal(raw.status, 400);
    assert.equal(raw.json().code, 'SEG_TOO_DEEP');
    const parsed = await inject(handler, { parsedBody: JSON.parse(deepEvent(65)) });
    assert.equal(parsed.status, 400);
    assert.equal(parsed.json().code, 'SEG_TOO_DEEP');
  });
});

/** A track handler that holds every event until `open()`; `entered` resolves once `n` are held. */
function holding(n: number) {
  const held = gate();
  const entered = countdown(n);
  const track = () => {
    entered.hit();
    return held.opened;
  };
  return { track, entered: entered.reached, open: held.open };
}

/** An answer of load shedding: 503 SEG_OVERLOADED, to be retried a second later. */
function assertShed(res: { status: number; json(): { code?: unknown }; headers: Record<string, unknown> }) {
  assert.equal(res.status, 503);
  assert.equal(res.json().code, 'SEG_OVERLOADED');
  assert.equal(res.headers['retry-after'], '1');
}

describe('load shedding', () => {
  test('past maxInFlight, 503 SEG_OVERLOADED with Retry-After at once; health still answers', async () => {
    const { track, entered, open } = holding(2);
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      maxInFlight: 2,
      handlers: { track },
    });
    const first = [inject(handler, { body: trackEvent() }), inject(handler, { body: trackEvent() })];
    await entered;
    assertShed(await inject(handler, { body: trackEvent() }));
    assert.equal((await inject(handler, { method: 'GET', url: '/health', headers: {} })).status, 200);
    open();
    assert.deepEqual(
      (await Promise.all(first)).map((r) => r.status),
      [200, 200],
    );
    assert.equal((await inject(handler, { body: trackEvent() })).status, 200);
  });

  test('what bodies hold at once is bounded in bytes too: past it 503 SEG_OVERLOADED, room again once answered', async () => {
    // Bodies of 510 KB of `[{},{},…]` (590 bytes gzipped) hold ~11 MB each once parsed: under maxInFlight
    // alone, 1,024 of them held by slow handlers could take ~11 GB, past Node's heap.
    const MiB = 1024 * 1024;
    const { track, entered, open } = holding(9);
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      maxBodyBytes: 4 * MiB,
      handlerTimeoutMs: 60_000, // held until the test lets go, however slow the machine
      handlers: { track, page: () => {} },
    });
    const large = () => trackEvent({ properties: { blob: 'x'.repeat(3.5 * MiB) } });
    const first = Array.from({ length: 9 }, () => inject(handler, { body: large() }));
    await entered; // 31.5 MiB held: another 3.5 MiB goes past 32
    assertShed(await inject(handler, { body: large() }));
    assert.equal((await inject(handler, { body: { ...trackEvent(), type: 'page' } })).status, 200);
    open();
    assert.deepEqual(
      (await Promise.all(first)).map((r) => r.status),
      Array(9).fill(200),
    );
    assert.equal((await inject(handler, { body: large() })).status, 200);
  });
});

test('a repeated Authorization header is refused, even when both name valid keys', async () => {
  const handler = createHandler({
    apiKeys: [API_KEY, 'other'],
    log: silentLogger,
    handlers: { track: () => {} },
  });
  const res = await inject(handler, {
    headers: segmentHeaders(),
    rawHeaders: ['Authorization', basic(API_KEY), 'authorization', basic('other')],
    body: trackEvent(),
  });
  assert.equal(res.status, 401);
  assert.equal(res.json().code, 'SEG_AUTH_MALFORMED');
});

describe('torn lines at start-up', () => {
  test('a partial last line moves to <file>.torn; the file keeps its whole lines; the next event starts clean', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-torn-'));
    try {
      const at = new Date();
      const file = join(dir, `events-${at.toISOString().slice(0, 10)}.ndjson`);
      const whole = '{"n":1}\n{"n":2}\n';
      const fragment = '{"receivedAt":"2026-11-26T10:00:0';
      writeFileSync(file, whole + fragment);
      writeFileSync(join(dir, 'events-2026-01-01.ndjson'), '{"n":0}\n');
      const store = await NdjsonStore.open(dir);
      assert.deepEqual(store.recovered, [{ file, movedTo: `${file}.torn`, bytes: fragment.length }]);
      assert.equal(readFileSync(`${file}.torn`, 'utf8'), `${fragment}\n`);
      await store.append({ n: 3 }, at);
      await store.close();
      assert.equal(readFileSync(file, 'utf8'), `${whole}{"n":3}\n`);
      assert.equal(readFileSync(join(dir, 'events-2026-01-01.ndjson'), 'utf8'), '{"n":0}\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a file that is all fragment (no newline at all), or longer than one read, is handled', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-torn-'));
    try {
      const only = join(dir, 'events-2026-01-02.ndjson');
      writeFileSync(only, '{"partial":');
      const long = join(dir, 'events-2026-01-03.ndjson');
      const bigLine = `{"pad":"${'x'.repeat(200_000)}"}\n`;
      writeFileSync(long, `${bigLine}{"pad":"${'y'.repeat(150_000)}`);
      const store = await NdjsonStore.open(dir);
      assert.equal(store.recovered.length, 2);
      assert.equal(readFileSync(only, 'utf8'), '');
      assert.equal(readFileSync(long, 'utf8'), bigLine);
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
