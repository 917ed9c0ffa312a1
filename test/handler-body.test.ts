import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, test } from 'node:test';
import { endpoint, type Seen } from './handler-harness.ts';
import { segmentHeaders, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';

// Reading the body: the size limit (declared or counted), framing (Content-Length, chunked, other
// transfer codings), a body that stalls or a client that goes away, the media type, and UTF-8.

describe('body', () => {
  const limit = 1024;
  const padded = (size: number) => {
    const base = JSON.stringify(trackEvent({ messageId: 'm1', pad: '' }));
    return JSON.stringify(trackEvent({ messageId: 'm1', pad: 'x'.repeat(size - base.length) }));
  };

  test('a body at the limit passes, one byte over is 413 (declared length, not read)', async () => {
    const handler = endpoint({ maxBodyBytes: limit });
    assert.equal(Buffer.byteLength(padded(limit)), limit);
    assert.equal((await inject(handler, { body: padded(limit) })).status, 200);
    const over = await inject(handler, { body: padded(limit + 1) });
    assert.equal(over.status, 413);
    assert.equal(over.json().code, 'SEG_BODY_TOO_LARGE');
    assert.equal(over.headers.connection, 'close');
  });

  test('a chunked body is counted the same way: at the limit passes, one byte over is 413', async () => {
    const handler = endpoint({ maxBodyBytes: limit });
    const split = (text: string) => [text.slice(0, 100), text.slice(100, 700), text.slice(700)];
    assert.equal((await inject(handler, { chunks: split(padded(limit)) })).status, 200);
    const over = await inject(handler, { chunks: split(padded(limit + 1)) });
    assert.equal(over.status, 413);
    assert.equal(over.json().code, 'SEG_BODY_TOO_LARGE');
  });

  test('neither Content-Length nor chunked is 411', async () => {
    const res = await inject(endpoint(), { body: trackEvent(), noLength: true });
    assert.equal(res.status, 411);
    assert.equal(res.json().code, 'SEG_LENGTH_REQUIRED');
  });

  test('a transfer coding before chunked is 501 (RFC 9112 §6.1); chunked not last is 400 and closes', async () => {
    for (const te of ['gzip, chunked', 'deflate, chunked']) {
      const res = await inject(endpoint(), {
        headers: { ...segmentHeaders(), 'transfer-encoding': te },
        body: '{}',
      });
      assert.equal(res.status, 501, te);
      assert.equal(res.json().code, 'SEG_TRANSFER_CODING');
    }
    // Where such a body ends cannot be known (RFC 9112 §6.3): the connection cannot be trusted after it.
    for (const te of ['gzip', 'deflate', 'chunked, gzip', 'xchunked', 'chunked;q=1']) {
      const res = await inject(endpoint(), {
        headers: { ...segmentHeaders(), 'transfer-encoding': te },
        body: '{}',
      });
      assert.equal(res.status, 400, te);
      assert.equal(res.json().code, 'SEG_BAD_REQUEST');
      assert.equal(res.headers.connection, 'close', te);
    }
  });

  test("a Content-Type a host's middleware rewrote is not taken for a second one", async () => {
    // Sent once, as `Application/JSON`; the host set req.headers to its own spelling before the endpoint.
    const handler = endpoint();
    const rewritten = (req: IncomingMessage, res: ServerResponse) => {
      req.headers['content-type'] = 'application/json';
      handler(req, res);
    };
    const res = await inject(rewritten, {
      headers: { ...segmentHeaders(), 'content-type': 'Application/JSON' },
      body: trackEvent(),
    });
    assert.equal(res.status, 200, res.body);
  });

  test('a malformed Content-Length is 400', async () => {
    const res = await inject(endpoint(), {
      headers: { ...segmentHeaders(), 'content-length': '12abc' },
      body: '{}',
    });
    assert.equal(res.status, 400);
    assert.equal(res.json().code, 'SEG_LENGTH_INVALID');
  });

  test('a body that stalls past the timeout is 408 and the connection is closed', async () => {
    const res = await inject(endpoint({ bodyTimeoutMs: 50 }), {
      headers: { ...segmentHeaders(), 'content-length': '100' },
      chunks: ['{"type":'],
      stall: true,
    });
    assert.equal(res.status, 408);
    assert.equal(res.json().code, 'SEG_BODY_TIMEOUT');
    assert.equal(res.headers.connection, 'close');
  });

  test('a request destroyed after its last byte but before its end: settled at once, not at the deadline', {
    timeout: 10_000, // a guard only: the body timeout is a minute
  }, async () => {
    const seen: Seen[] = [];
    const handler = endpoint({ bodyTimeoutMs: 60_000 }, seen);
    const body = JSON.stringify(trackEvent());
    await inject(
      (req, res) => {
        handler(req, res);
        // Every byte arrived (Node sets `complete`), then the connection went before 'end' was emitted.
        req.once('data', () => {
          req.complete = true;
          req.destroy();
        });
      },
      {
        headers: { ...segmentHeaders(), 'content-length': String(body.length) },
        chunks: [body],
        stall: true,
      },
    ).catch(() => {});
    await handler.idle();
    assert.equal(handler.inFlight, 0);
    assert.equal(seen.length, 0);
  });

  test('a client that goes away mid-body: its event is not processed, and nothing waits on it', {
    timeout: 10_000, // a guard only: the body timeout is a minute, so an abort not seen would hang here
  }, async () => {
    const seen: Seen[] = [];
    const handler = endpoint({ bodyTimeoutMs: 60_000 }, seen);
    const res = await inject(handler, {
      headers: { ...segmentHeaders(), 'content-length': '100' },
      chunks: ['{"type":'],
      abort: true,
    });
    assert.equal(res.status, 0);
    await handler.idle();
    assert.equal(handler.inFlight, 0);
    assert.equal(seen.length, 0);
  });

  test('JSON in a charset other than UTF-8 is 415, as the express host answers it: its bytes would be read as UTF-8', async () => {
    for (const type of [
      'application/json; charset=utf-16',
      'application/json; charset="iso-8859-1"',
      'application/json;charset=latin1',
      // Named twice: the body is read as UTF-8 only when every charset it is given says so.
      'application/json;charset=utf-8;charset=latin1',
    ]) {
      const res = await inject(endpoint(), {
        headers: { ...segmentHeaders(), 'content-type': type },
        body: trackEvent(),
      });
      assert.equal(res.status, 415, type);
      assert.equal(res.json().code, 'SEG_UNSUPPORTED_MEDIA_TYPE');
      assert.match(String(res.json().message), /charset .* is not supported: send UTF-8 JSON/);
    }
    // US-ASCII is UTF-8's first 128 characters: its bytes read as UTF-8 are what was meant.
    for (const type of [
      'application/json; charset=UTF-8',
      'application/json; charset="utf8"',
      'application/json; charset=us-ascii',
      'application/json; charset=ASCII',
    ]) {
      const res = await inject(endpoint(), {
        headers: { ...segmentHeaders(), 'content-type': type },
        body: trackEvent(),
      });
      assert.equal(res.status, 200, type);
    }
  });

  test('a non-JSON Content-Type is 415; JSON with parameters and +json are accepted', async () => {
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/jsonx',
      'multipart/form-data',
    ]) {
      const res = await inject(endpoint(), {
        headers: { ...segmentHeaders(), 'content-type': type },
        body: trackEvent(),
      });
      assert.equal(res.status, 415, type);
      assert.equal(res.json().code, 'SEG_UNSUPPORTED_MEDIA_TYPE');
    }
    for (const type of [
      'application/json; charset=utf-8',
      'APPLICATION/JSON',
      'application/vnd.segment+json',
      undefined,
    ]) {
      const res = await inject(endpoint(), {
        headers: { ...segmentHeaders(), 'content-type': type },
        body: trackEvent(),
      });
      assert.equal(res.status, 200, String(type));
    }
  });

  test('invalid UTF-8 is 400; a UTF-8 byte order mark is tolerated', async () => {
    const bad = Buffer.concat([
      Buffer.from('{"type":"track","event":"'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('","userId":"u"}'),
    ]);
    const res = await inject(endpoint(), { body: bad });
    assert.equal(res.status, 400);
    assert.equal(res.json().code, 'SEG_INVALID_UTF8');
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(trackEvent()))]);
    assert.equal((await inject(endpoint(), { body: bom })).status, 200);
  });
});
