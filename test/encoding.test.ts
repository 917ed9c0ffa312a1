import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { createHandler, silentLogger } from '../src/index.ts';
import { API_KEY, segmentHeaders, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';

const seen: unknown[] = [];
const handler = (maxBodyBytes = 4096) =>
  createHandler({
    apiKeys: [API_KEY],
    log: silentLogger,
    maxBodyBytes,
    handlers: { track: (event) => void seen.push(event) },
  });
const encoded = (coding: string, body: Buffer) => ({
  headers: { ...segmentHeaders(), 'content-encoding': coding },
  body,
});

describe('Content-Encoding', () => {
  test('gzip and deflate bodies are decoded', async () => {
    for (const [coding, encode] of [
      ['gzip', gzipSync],
      ['x-gzip', gzipSync],
      ['GZIP', gzipSync],
      ['deflate', deflateSync],
    ] as const) {
      seen.length = 0;
      const event = trackEvent({ event: `Compressed ${coding}` });
      const res = await inject(handler(), encoded(coding, encode(JSON.stringify(event))));
      assert.equal(res.status, 200, `${coding}: ${res.body}`);
      assert.equal((seen[0] as { event: string }).event, `Compressed ${coding}`);
    }
  });

  test('deflate without its zlib wrapper (raw deflate, as some senders write it) is decoded too', async () => {
    // RFC 9110 §8.4.1.2 names the zlib format; some clients send the bare deflate stream under the same
    // name, and browsers and undici read both. The wrapper's header check (RFC 1950 §2.2) tells them apart.
    seen.length = 0;
    const event = trackEvent({ event: 'Raw deflate' });
    const res = await inject(handler(), encoded('deflate', deflateRawSync(JSON.stringify(event))));
    assert.equal(res.status, 200, res.body);
    assert.equal((seen[0] as { event: string }).event, 'Raw deflate');
    // Neither form: still a 400 that names the coding.
    const bad = await inject(handler(), encoded('deflate', Buffer.from('{"not":"deflate data"}')));
    assert.equal(bad.status, 400);
    assert.equal(bad.json().code, 'SEG_BAD_ENCODING');
    // Bytes after raw deflate data are refused as after wrapped data.
    const trailing = Buffer.concat([deflateRawSync(JSON.stringify(trackEvent())), Buffer.from('{"x":1}')]);
    assert.equal((await inject(handler(), encoded('deflate', trailing))).json().code, 'SEG_BAD_ENCODING');
  });

  test('bytes after the compressed data are a 400, for deflate as for gzip', async () => {
    // Node's inflate stops at the end of the deflate data and drops what follows unread; gunzip reads on
    // (the next member) and fails. The body is not what its Content-Encoding says either way.
    const trailing = Buffer.from('{"type":"track","event":"smuggled","userId":"x"}');
    for (const [coding, encode] of [
      ['deflate', deflateSync],
      ['gzip', gzipSync],
    ] as const) {
      seen.length = 0;
      const body = Buffer.concat([encode(JSON.stringify(trackEvent())), trailing]);
      const res = await inject(handler(), encoded(coding, body));
      assert.equal(res.status, 400, `${coding}: ${res.body}`);
      assert.equal(res.json().code, 'SEG_BAD_ENCODING', coding);
      assert.deepEqual(seen, [], coding);
    }
    // Zeros after the data are padding, which gunzip reads past: taken, for either coding.
    for (const encode of [gzipSync, deflateSync]) {
      const padded = Buffer.concat([encode(JSON.stringify(trackEvent())), Buffer.alloc(16)]);
      const coding = encode === gzipSync ? 'gzip' : 'deflate';
      const res = await inject(handler(), encoded(coding, padded));
      assert.equal(res.status, 200, `${coding}: ${res.body}`);
    }
    // Two gzip members are one body (RFC 1952 §2.2): still read whole.
    const text = JSON.stringify(trackEvent());
    const members = Buffer.concat([gzipSync(text.slice(0, 20)), gzipSync(text.slice(20))]);
    assert.equal((await inject(handler(), encoded('gzip', members))).status, 200);
  });

  test('identity, or no header, is the body as is', async () => {
    const res = await inject(handler(), encoded('identity', Buffer.from(JSON.stringify(trackEvent()))));
    assert.equal(res.status, 200);
  });

  test('the limit holds for decompressed bytes: at the limit passes, one byte over is 413 (no bomb)', async () => {
    const limit = 4096;
    const base = JSON.stringify(trackEvent({ messageId: 'm', pad: '' }));
    const exactly = JSON.stringify(trackEvent({ messageId: 'm', pad: 'x'.repeat(limit - base.length) }));
    assert.equal(Buffer.byteLength(exactly), limit);
    assert.equal((await inject(handler(limit), encoded('gzip', gzipSync(exactly)))).status, 200);
    const over = JSON.stringify(trackEvent({ messageId: 'm', pad: 'x'.repeat(limit - base.length + 1) }));
    const res = await inject(handler(limit), encoded('gzip', gzipSync(over)));
    assert.equal(res.status, 413);
    assert.equal(res.json().code, 'SEG_BODY_TOO_LARGE');
    // 10 MB of zeros in ~10 KB: refused at the limit, not inflated whole.
    const bomb = gzipSync(Buffer.alloc(10 * 1024 * 1024));
    assert.ok(bomb.length < limit * 4);
    const bombed = await inject(handler(64 * 1024), encoded('gzip', bomb));
    assert.equal(bombed.status, 413);
    assert.match(bombed.json().message ?? '', /Decompressed/);
  });

  test("a compressed body on /v1/{type} is held to Segment's 32 KiB as it decodes, not to maxBodyBytes", async () => {
    // It was decoded up to maxBodyBytes (512 KiB by default) and a 413 then named that (a review found it).
    const event = (pad: number) => JSON.stringify(trackEvent({ messageId: 'at', pad: 'x'.repeat(pad) }));
    const size = Buffer.byteLength(event(0));
    const at = await inject(handler(512 * 1024), {
      url: '/v1/track',
      ...encoded('gzip', gzipSync(event(32 * 1024 - size))),
    });
    assert.equal(at.status, 200, at.body);
    const over = await inject(handler(512 * 1024), {
      url: '/v1/track',
      ...encoded('gzip', gzipSync(event(400_000))),
    });
    assert.equal(over.status, 413, over.body);
    assert.equal(over.json().code, 'SEG_BODY_TOO_LARGE');
    assert.match(over.json().message ?? '', /^Decompressed request body .*\b32768\b/);
  });

  test("a leading byte-order mark is not counted against Segment's limit, sent plain or compressed", async () => {
    // The BOM is dropped before the body is read as JSON; the limits on the headers and while reading
    // counted it, and a 32 KiB event that had passed became a 413 (a re-probe found it).
    const event = (pad: number) => JSON.stringify(trackEvent({ messageId: 'bom', pad: 'x'.repeat(pad) }));
    const body = Buffer.from(`\ufeff${event(32 * 1024 - Buffer.byteLength(event(0)))}`);
    assert.equal(body.length, 32 * 1024 + 3);
    for (const options of [{ body }, encoded('gzip', gzipSync(body))]) {
      const res = await inject(handler(512 * 1024), { url: '/v1/track', ...options });
      assert.equal(res.status, 200, res.body);
    }
  });

  test('an unknown coding is 415 before the body is read; bytes that are not gzip are 400', async () => {
    for (const coding of ['br', 'zstd', 'gzip, deflate', 'compress']) {
      const res = await inject(handler(), encoded(coding, Buffer.from('{}')));
      assert.equal(res.status, 415, coding);
      assert.equal(res.json().code, 'SEG_UNSUPPORTED_ENCODING');
    }
    const res = await inject(handler(), encoded('gzip', Buffer.from(JSON.stringify(trackEvent()))));
    assert.equal(res.status, 400);
    assert.equal(res.json().code, 'SEG_BAD_ENCODING');
    const truncated = gzipSync(JSON.stringify(trackEvent())).subarray(0, 20);
    const cut = await inject(handler(), encoded('gzip', truncated));
    assert.equal(cut.status, 400);
  });
});
