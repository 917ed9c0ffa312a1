// More of what a partner's server does around the handler: a response hook of its own that throws, a
// copy of the body piped to a stream it reads later, bytes it read itself (compressed as sent), a status
// phrase it set. Each event is taken where it can be read whole, refused with a status Segment retries
// where the host kept it from the handler, and the host keeps running.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { text } from 'node:stream/consumers';
import { describe, test } from 'node:test';
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import type { EndpointHandler } from '../../src/index.ts';
import { type Answer, codeOf, eventBytes, hosted } from './host-harness.ts';

/** What the sender sees of a request whose answer was cut: the connection's end, not a status. */
const cut = (sent: Promise<Answer>) =>
  sent.then(
    (answer) => assert.fail(`answered ${answer.status} ${answer.body}`),
    (err: NodeJS.ErrnoException) =>
      assert.match(String(err.code ?? err.message), /ECONNRESET|socket hang up/),
  );

describe("a host's response hook that throws as a refusal is written", () => {
  // A writeHead wrapper with a bug (it reads `req.route.path`, undefined outside the host's router) threw
  // out of the handler's call for a 401, out of the body's 'end' listener for a 400 and out of a promise's
  // callback for a 500: the host's process died. A success was already guarded (its answer cut).
  const hooking = (req: IncomingMessage, res: ServerResponse, segment: EndpointHandler) => {
    const writeHead = res.writeHead;
    res.writeHead = function (this: ServerResponse, status: number, ...rest: unknown[]) {
      if (status >= 400) throw new TypeError("Cannot read properties of undefined (reading 'path')");
      return (writeHead as (...args: unknown[]) => ServerResponse).call(this, status, ...rest);
    } as ServerResponse['writeHead'];
    segment(req, res);
  };
  const failing = (event: Record<string, unknown>) =>
    event.messageId === 'fails' ? new Error('downstream is down') : undefined;

  test('each refusal is cut, the host keeps running and takes the next event', async () => {
    await hosted(
      hooking,
      async ({ seen, logs, send }) => {
        await cut(send([eventBytes()], { authorization: 'Basic d3Jvbmc6' }));
        await cut(send([Buffer.from('{"type":"track"')]));
        await cut(send([eventBytes({ messageId: 'fails' })]));
        const taken = await send([eventBytes({ messageId: 'after-hooks' })]);
        assert.equal(taken.status, 200, taken.body);
        assert.equal(seen.length, 1);
        const said = logs.filter((line) => line.includes('writing an answer threw'));
        assert.equal(said.length, 1, 'said once, with the host error');
        assert.match(said[0] ?? '', /reading 'path'/);
      },
      { fail: failing },
    );
  });
});

describe('a host that pipes the body to a copy it reads later', () => {
  // `req.pipe(new PassThrough())`, read once answered (to archive it): the copy's buffer fills at its
  // high-water mark, the pipe pauses the request, and an event over ~32 KB waited out its deadline: a 408,
  // which Segment does not retry.
  test('a large event is read whole and taken, and the copy gets every byte', async () => {
    const copies: Promise<string>[] = [];
    await hosted(
      (req, res, segment) => {
        const copy = req.pipe(new PassThrough());
        res.on('finish', () => copies.push(text(copy)));
        segment(req, res);
      },
      async ({ seen, send }) => {
        const body = eventBytes({ messageId: 'teed', properties: { pad: 'x'.repeat(30_000) } });
        const answer = await send([body.subarray(0, 20_000), body.subarray(20_000)]);
        assert.equal(answer.status, 200, answer.body);
        assert.equal(seen.length, 1);
        assert.equal(await copies[0], body.toString());
      },
      { bodyTimeoutMs: 2_000 },
    );
  });

  test('a request the host pauses once the handler has it: a 500 at the deadline (retried), not a 408', async () => {
    await hosted(
      (req, res, segment) => {
        segment(req, res);
        req.pause();
      },
      async ({ seen, logs, send }) => {
        const answer = await send([eventBytes()]);
        assert.equal(answer.status, 500, answer.body);
        assert.equal(codeOf(answer), 'SEG_INTERNAL');
        assert.equal(seen.length, 0);
        assert.match(logs.join(''), /paused/);
      },
      { bodyTimeoutMs: 300 },
    );
  });
});

describe('bytes the host read itself, still compressed as sent (raw-body into req.body)', () => {
  // A host that read the stream as bytes without decoding it (raw-body, a framework's raw buffer) left
  // gzip data in req.body under the request's Content-Encoding: a 400 "not UTF-8", final for Segment.
  const readRaw = (req: IncomingMessage, res: ServerResponse, segment: EndpointHandler) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      (req as IncomingMessage & { body?: unknown }).body = Buffer.concat(chunks);
      segment(req, res);
    });
  };

  test('gzip, deflate and bare deflate are decoded, as the handler decodes a stream', async () => {
    await hosted(readRaw, async ({ seen, send }) => {
      const coded = [
        ['gzip', gzipSync(eventBytes({ messageId: 'raw-gzip' }))],
        ['deflate', deflateSync(eventBytes({ messageId: 'raw-deflate' }))],
        ['deflate', deflateRawSync(eventBytes({ messageId: 'raw-bare' }))],
      ] as const;
      for (const [coding, bytes] of coded) {
        const answer = await send([bytes], { 'content-encoding': coding });
        assert.equal(answer.status, 200, `${coding}: ${answer.body}`);
      }
      assert.deepEqual(
        seen.map(({ event }) => event.messageId),
        ['raw-gzip', 'raw-deflate', 'raw-bare'],
      );
    });
  });

  test('the decoded body is held to the limit, at which it passes; data that is not its coding is a 400', async () => {
    const limit = 100_000;
    await hosted(
      readRaw,
      async ({ seen, send }) => {
        const bomb = gzipSync(Buffer.alloc(1_000_000, 0x20));
        const large = await send([bomb], { 'content-encoding': 'gzip' });
        assert.deepEqual([large.status, codeOf(large)], [413, 'SEG_BODY_TOO_LARGE']);
        const event = eventBytes({ messageId: 'at-limit' });
        const atLimit = Buffer.concat([event, Buffer.alloc(limit - event.length, 0x20)]);
        const taken = await send([gzipSync(atLimit)], { 'content-encoding': 'gzip' });
        assert.equal(taken.status, 200, taken.body);
        const broken = gzipSync(eventBytes()).subarray(0, 30);
        const bad = await send([broken], { 'content-encoding': 'gzip' });
        assert.deepEqual([bad.status, codeOf(bad)], [400, 'SEG_BAD_ENCODING']);
        // What follows the data but padding is refused, as the handler refuses it in a stream.
        for (const coded of [deflateSync(eventBytes()), deflateRawSync(eventBytes())]) {
          const trailed = await send([Buffer.concat([coded, Buffer.from('garbage')])], {
            'content-encoding': 'deflate',
          });
          assert.deepEqual([trailed.status, codeOf(trailed)], [400, 'SEG_BAD_ENCODING']);
        }
        const padded = await send(
          [Buffer.concat([deflateSync(eventBytes({ messageId: 'padded' })), Buffer.alloc(4)])],
          {
            'content-encoding': 'deflate',
          },
        );
        assert.equal(padded.status, 200, padded.body);
        assert.deepEqual(
          seen.map(({ event }) => event.messageId),
          ['at-limit', 'padded'],
        );
      },
      { maxBodyBytes: limit },
    );
  });

  test('bytes a host decoded already (express.raw keeps the header) are read as they are', async () => {
    await hosted(
      (req, res, segment) => {
        (req as IncomingMessage & { body?: unknown }).body = eventBytes({ messageId: 'decoded' });
        req.resume().on('end', () => segment(req, res));
      },
      async ({ seen, send }) => {
        const answer = await send([gzipSync(eventBytes())], { 'content-encoding': 'gzip' });
        assert.equal(answer.status, 200, answer.body);
        assert.equal(seen[0]?.event.messageId, 'decoded');
      },
    );
  });
});

describe("a status phrase the host set (Koa's ctx.status, res.statusMessage)", () => {
  test("the handler's answers carry their own status's phrase", async () => {
    await hosted(
      (req, res, segment) => {
        res.statusCode = 418;
        res.statusMessage = "I'm a Teapot";
        segment(req, res);
      },
      async ({ send }) => {
        const taken = await send([eventBytes()]);
        assert.deepEqual([taken.status, taken.phrase], [200, 'OK']);
        const refused = await send([Buffer.from('{')]);
        assert.deepEqual([refused.status, refused.phrase], [400, 'Bad Request']);
      },
    );
  });
});
