// What a partner's own server may have done to the request and response before handing them to the
// handler: a request log that set the body's encoding or tapped its bytes, a middleware that made
// `req.body` an empty object or paused the stream, one that flushed the headers. Each is answered as
// the contract wants an event it cannot take (a 5xx Segment retries, never a 400 that drops it, never a
// 2xx for an event not taken), the host keeps running, and an event that can be read whole is taken.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { deflateSync, gzipSync } from 'node:zlib';
import { LINGER_MS } from '../../src/connection-end.ts';
import type { EndpointHandler } from '../../src/index.ts';
import { segmentHeaders } from '../helpers.ts';
import { type Answer, codeOf, eventBytes, hosted } from './host-harness.ts';

describe('a request the host set an encoding on (a request log that reads the body as text)', () => {
  for (const encoding of ['utf8', 'latin1', 'hex', 'base64'] as const) {
    test(`${encoding}: the event is read as sent, a character split across chunks included`, async () => {
      await hosted(
        (req, res, segment) => {
          req.setEncoding(encoding);
          segment(req, res);
        },
        async ({ seen, send }) => {
          const body = eventBytes({ properties: { name: 'Zoë 日本' } });
          const at = body.indexOf(Buffer.from('日')) + 1; // inside the character's three bytes
          const answer = await send([body.subarray(0, at), body.subarray(at)]);
          assert.equal(answer.status, 200, answer.body);
          assert.deepEqual(seen[0]?.event.properties, { name: 'Zoë 日本' });
        },
      );
    });
  }

  test('a compressed body: read back where the encoding keeps every byte; a 500 where utf8 lost them', async () => {
    for (const [encoding, status] of [
      ['latin1', 200],
      ['utf8', 500],
    ] as const) {
      await hosted(
        (req, res, segment) => {
          req.setEncoding(encoding);
          segment(req, res);
        },
        async ({ seen, logs, send }) => {
          const answer = await send([gzipSync(eventBytes())], { 'content-encoding': 'gzip' });
          assert.equal(answer.status, status, `${encoding}: ${answer.body}`);
          assert.equal(seen.length, status === 200 ? 1 : 0);
          if (status === 500) {
            assert.equal(codeOf(answer), 'SEG_INTERNAL');
            assert.match(logs.join(''), /encoding/);
          }
        },
      );
    }
  });
});

describe('a request the host read some of', () => {
  test('bytes taken by the host before the handler: a 500 (retried), not a 400 that drops the event', async () => {
    await hosted(
      (req, res, segment) => {
        let bytes = 0;
        // The handler gets the request once some of the body has gone to the host's own listener.
        req.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes === chunk.length) segment(req, res);
        });
      },
      async ({ seen, logs, send }) => {
        const body = eventBytes();
        const answer = await send([body.subarray(0, 10), body.subarray(10)]);
        assert.equal(answer.status, 500, answer.body);
        assert.equal(codeOf(answer), 'SEG_INTERNAL');
        assert.equal(seen.length, 0);
        assert.match(logs.join(''), /read before the endpoint/);
      },
    );
  });

  test("a host's own listener beside ours (a byte counter): a compressed event is read whole, not cut by the decoder's load", async () => {
    for (const [coding, compress] of [
      ['gzip', gzipSync],
      ['deflate', deflateSync],
    ] as const) {
      let counted = 0;
      await hosted(
        (req, res, segment) => {
          req.on('data', (chunk: Buffer) => {
            counted += chunk.length;
          });
          segment(req, res);
        },
        async ({ seen, send }) => {
          const body = compress(eventBytes({ messageId: `tapped-${coding}` }));
          const answer = await send([body], { 'content-encoding': coding });
          assert.equal(answer.status, 200, `${coding}: ${answer.body}`);
          assert.equal(seen[0]?.event.messageId, `tapped-${coding}`);
          assert.equal(counted, body.length, 'the host counted every byte too');
        },
      );
    }
  });

  test('req.body made an object by a middleware that never read the stream: the event is read from the stream', async () => {
    for (const made of [{}, { tenant: 'acme' }]) {
      await hosted(
        (req, res, segment) => {
          Object.assign(req, { body: { ...made } });
          segment(req, res);
        },
        async ({ seen, send }) => {
          const answer = await send([eventBytes({ messageId: 'from-the-stream' })]);
          assert.equal(answer.status, 200, answer.body);
          assert.equal(seen[0]?.event.messageId, 'from-the-stream');
        },
      );
    }
  });

  test("the stream read by the host, then req.body made {}: a 500 with its cause, not the sender's 400", async () => {
    // A raw-body capture, then `req.body = req.body || {}`: the event is gone. Taken as the body sent, the
    // empty object was a final 400 (no type), and Segment dropped the event.
    await hosted(
      (req, res, segment) => {
        const chunks: Buffer[] = [];
        req.on('data', (chunk: Buffer) => chunks.push(chunk));
        req.on('end', () => {
          Object.assign(req, { rawBody: Buffer.concat(chunks), body: {} });
          segment(req, res);
        });
      },
      async ({ seen, logs, send }) => {
        // The shortest event that can pass, as a hand-written client may send it.
        const answer = await send([Buffer.from('{"type":"page","userId":"u"}')]);
        assert.equal(answer.status, 500, answer.body);
        assert.equal(JSON.parse(answer.body).code, 'SEG_INTERNAL');
        assert.equal(seen.length, 0);
        assert.ok(
          logs.some((line) => line.includes('req.body is {}')),
          logs.join('\n'),
        );
      },
    );
    // A sender's own `{}` is still its 400.
    await hosted(
      (req, res, segment) => {
        req.on('data', () => {});
        req.on('end', () => {
          Object.assign(req, { body: {} });
          segment(req, res);
        });
      },
      async ({ send }) => {
        const answer = await send([Buffer.from('{\n  \n}\n')]);
        assert.equal(answer.status, 400, answer.body);
        assert.equal(JSON.parse(answer.body).code, 'SEG_TYPE_MISSING');
      },
    );
  });

  test('a request the host paused: read at once, not left to its deadline', async () => {
    await hosted(
      (req, res, segment) => {
        req.pause();
        segment(req, res);
      },
      async ({ seen, send }) => {
        const started = Date.now();
        const answer = await send([eventBytes()]);
        assert.equal(answer.status, 200, answer.body);
        assert.equal(seen.length, 1);
        assert.ok(Date.now() - started < 5_000, 'answered before the body deadline');
      },
    );
  });
});

describe("a request the host listens to for 'readable'", () => {
  // A 'readable' listener holds a stream in paused mode: Node's 'data' listeners and resume() do not start
  // it then. The body waited out its deadline, a 408 for every event (which Segment may never send again).
  for (const [what, reads] of [
    ['a listener that reads nothing', false],
    ['a listener that reads the body too (a request log)', true],
  ] as const) {
    test(`${what}: the event is read whole, at once`, async () => {
      await hosted(
        (req, res, segment) => {
          req.on('readable', () => {
            if (reads) while (req.read() !== null);
          });
          segment(req, res);
        },
        async ({ seen, send }) => {
          const started = Date.now();
          const whole = await send([eventBytes({ messageId: `readable-${reads}` })]);
          assert.equal(whole.status, 200, whole.body);
          const parts = await send([Buffer.from('{"type":"track",'), eventBytes().subarray(1)]);
          assert.equal(parts.status, 200, parts.body);
          assert.equal(seen.length, 2);
          const big = await send([Buffer.alloc(600 * 1024, 0x20), Buffer.from('{}')]);
          assert.equal(big.status, 413, big.body);
          assert.equal(codeOf(big), 'SEG_BODY_TOO_LARGE');
          assert.ok(Date.now() - started < 5_000, 'answered before the body deadline');
        },
      );
    });
  }

  test('a handler called after the body came (an await in the host): the event is read at once', async () => {
    // Node says 'readable' when data comes, or to a first listener: neither happens for ours then.
    await hosted(
      (req, res, segment) => {
        req.on('readable', () => {});
        setTimeout(() => segment(req, res), 100);
      },
      async ({ seen, send }) => {
        const started = Date.now();
        const answer = await send([eventBytes({ messageId: 'readable-late' })]);
        assert.equal(answer.status, 200, answer.body);
        assert.equal(seen.length, 1);
        assert.ok(Date.now() - started < 5_000, 'answered before the body deadline');
      },
    );
  });
  test('a refusal that ends the connection: the rest of the body is read and dropped as it comes', async () => {
    // Left unread, the rest waited in the kernel until the lingering close gave up on the connection,
    // 5 s later: a sender still writing it was held that long instead of its connection ending once it had
    // sent it all.
    await hosted(
      (req, res, segment) => {
        req.on('readable', () => {});
        segment(req, res);
      },
      async ({ seen, port }) => {
        const size = 32 * 1024 * 1024; // more than the kernel holds between the two sides
        const started = Date.now();
        const socket = connect(port, '127.0.0.1');
        const head = Object.entries(segmentHeaders()).map(([name, value]) => `${name}: ${value}\r\n`);
        socket.write(`POST / HTTP/1.1\r\nHost: localhost\r\n${head.join('')}Content-Length: ${size}\r\n\r\n`);
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        const closed = new Promise((close) => socket.once('close', close));
        await new Promise<void>((sent, failed) => {
          socket.once('error', failed);
          socket.end(Buffer.alloc(size, 0x20), sent);
        });
        await closed;
        assert.ok(Date.now() - started < LINGER_MS - 1_000, 'ended once the sender had sent it all');
        assert.match(Buffer.concat(chunks).toString(), /^HTTP\/1\.1 413 .*"code":"SEG_BODY_TOO_LARGE"/s);
        assert.equal(seen.length, 0);
      },
    );
  });
});

describe('a response whose headers the host already sent', () => {
  const flushing = (req: IncomingMessage, res: ServerResponse, segment: EndpointHandler) => {
    res.flushHeaders();
    segment(req, res);
  };

  test("an event is taken and the host's response ended: its status may already have told the sender", async () => {
    await hosted(flushing, async ({ seen, logs, send }) => {
      for (let i = 0; i < 2; i++) {
        const answer = await send([eventBytes({ messageId: `flushed-${i}` })]);
        assert.equal(answer.status, 200);
      }
      assert.deepEqual(
        seen.map(({ event }) => event.messageId),
        ['flushed-0', 'flushed-1'],
      );
      assert.equal(logs.filter((line) => /headers were already sent/.test(line)).length, 1);
    });
  });

  for (const [what, path, headers] of [
    ['a refusal (a wrong key)', '/', { authorization: 'Basic d3Jvbmc6' }],
    ['the health path', '/health', {}],
    ['the live path', '/live', {}],
    ['a path not served (404)', '/nowhere', {}],
  ] as const) {
    test(`${what}: the connection is cut, since no other status can be given, and the host keeps running`, async () => {
      await hosted(flushing, async ({ seen, logs, send }) => {
        for (let i = 0; i < 2; i++) {
          await assert.rejects(send([eventBytes()], headers, path), /socket hang up|ECONNRESET|aborted/);
        }
        assert.equal(seen.length, 0, 'no event taken that was refused');
        assert.equal(logs.filter((line) => /headers were already sent/.test(line)).length, 1);
      });
    });
  }
});

describe('a response the host set headers on before the handler', () => {
  // A host's defaults (a compression middleware's Content-Encoding, a Transfer-Encoding, a Retry-After,
  // an auth scheme's challenge, an Allow) went out with the handler's answers: a 401 whose plain JSON was
  // labelled gzip (unreadable to the sender, Segment's debugger without its message), with both a
  // Content-Length and a Transfer-Encoding, a 404 with the host's Retry-After and challenge.
  const presetting = (req: IncomingMessage, res: ServerResponse, segment: EndpointHandler) => {
    res.setHeader('Content-Encoding', 'gzip');
    res.setHeader('Transfer-Encoding', 'chunked');
    res.setHeader('Content-Range', 'bytes 0-1/2');
    res.setHeader('Retry-After', '9999');
    res.setHeader('WWW-Authenticate', 'Bearer');
    res.setHeader('Allow', 'GET');
    res.setHeader('X-Request-Id', 'host-1');
    segment(req, res);
  };
  const framing = (answer: Answer) => [
    answer.headers['content-encoding'],
    answer.headers['transfer-encoding'],
    answer.headers['content-range'],
  ];

  test("the handler's answers say what they are: the host's framing and status headers are not theirs, its others stay", async () => {
    await hosted(presetting, async ({ seen, send }) => {
      const taken = await send([eventBytes({ messageId: 'preset-1' })]);
      assert.equal(taken.status, 200);
      assert.deepEqual(framing(taken), [undefined, undefined, undefined]);
      assert.equal(seen.length, 1);
      const refused = await send([eventBytes()], { authorization: 'Basic d3Jvbmc6' });
      assert.equal(refused.status, 401);
      assert.equal(codeOf(refused), 'SEG_AUTH_UNKNOWN', 'plain JSON, labelled so');
      assert.deepEqual(framing(refused), [undefined, undefined, undefined]);
      assert.match(String(refused.headers['www-authenticate']), /^Basic/, 'its own challenge');
      assert.equal(refused.headers['retry-after'], undefined);
      assert.equal(refused.headers.allow, undefined);
      assert.equal(refused.headers['x-request-id'], 'host-1', "the host's own header stays");
      const unknown = await send([eventBytes()], {}, '/nowhere');
      assert.equal(unknown.status, 404);
      assert.deepEqual(
        [unknown.headers['retry-after'], unknown.headers['www-authenticate'], unknown.headers.allow],
        [undefined, undefined, undefined],
      );
      const health = await send([Buffer.alloc(0)], {}, '/health');
      assert.deepEqual(framing(health), [undefined, undefined, undefined]);
      assert.equal(typeof JSON.parse(health.body), 'object', `plain JSON: ${health.status} ${health.body}`);
    });
  });
});

describe('a response the host announced trailers on', () => {
  // `Trailer` announces fields after a chunked body: Node throws on writing an answer with a length
  // beside it (ERR_HTTP_TRAILER_INVALID). Thrown where a body's refusal is written, after the body came,
  // it stopped the host's process: any sender could, with a body that is not JSON.
  const announcing = (req: IncomingMessage, res: ServerResponse, segment: EndpointHandler) => {
    res.setHeader('Trailer', 'Server-Timing');
    segment(req, res);
  };

  test('every answer is written without it, and the host keeps running', async () => {
    await hosted(announcing, async ({ seen, send }) => {
      const taken = await send([eventBytes({ messageId: 'trailer-1' })]);
      assert.equal(taken.status, 200);
      assert.equal(taken.headers.trailer, undefined);
      assert.equal(seen.length, 1);
      const notJson = await send([Buffer.from('{bad json')]);
      assert.equal(notJson.status, 400);
      assert.equal(codeOf(notJson), 'SEG_INVALID_JSON');
      const unknownKey = await send([eventBytes()], { authorization: 'Basic d3Jvbmc6' });
      assert.equal(unknownKey.status, 401);
      assert.equal(codeOf(unknownKey), 'SEG_AUTH_UNKNOWN');
      const chunked = await send([Buffer.from('{"type":'), Buffer.from('"track"')]);
      assert.equal(chunked.status, 400, chunked.body);
      assert.equal(codeOf(chunked), 'SEG_INVALID_JSON');
      const again = await send([eventBytes({ messageId: 'trailer-2' })]);
      assert.equal(again.status, 200, 'still serving');
      assert.equal(seen.length, 2);
    });
  });
});

describe('a host that hands the same request to the handler twice', () => {
  // Two middlewares that both mount the handler, or a host that calls it again after an await: the
  // partner's handler ran twice for one event (an event without messageId is not filtered), and where the
  // connection was to close, the second call stopped Node's parser under the body: a bare 400 that
  // Segment does not retry, the event dropped. The second call is now ignored, and said once.
  const twice = (req: IncomingMessage, res: ServerResponse, segment: EndpointHandler) => {
    segment(req, res);
    segment(req, res);
  };
  const later = (req: IncomingMessage, res: ServerResponse, segment: EndpointHandler) => {
    segment(req, res);
    setTimeout(() => segment(req, res), 50);
  };
  const saidTwice = (logs: string[]) => logs.filter((line) => /handed the same request/.test(line)).length;

  for (const [what, host] of [
    ['at once', twice],
    ['again 50 ms later', later],
  ] as const) {
    test(`${what}: each event taken once and answered once, in one piece or in chunks, kept alive or closing`, async () => {
      await hosted(host, async ({ seen, logs, send }) => {
        const cases: Array<[Buffer[], Record<string, string>]> = [
          [[eventBytes({ messageId: undefined })], {}],
          [
            [
              eventBytes({ messageId: undefined }).subarray(0, 10),
              eventBytes({ messageId: undefined }).subarray(10),
            ],
            {},
          ],
          [[eventBytes({ messageId: undefined })], { connection: 'close' }],
          [
            [
              eventBytes({ messageId: undefined }).subarray(0, 10),
              eventBytes({ messageId: undefined }).subarray(10),
            ],
            { connection: 'close' },
          ],
        ];
        for (const [i, [parts, headers]] of cases.entries()) {
          const answer = await send(parts, headers);
          assert.equal(answer.status, 200, `case ${i}: ${answer.status} ${answer.body}`);
          assert.equal(answer.body, '', 'one answer: an empty 200, nothing after it');
          await sleep(80);
          assert.equal(seen.length, i + 1, `case ${i}: the partner's handler called once`);
        }
        const refused = await send([eventBytes()], { authorization: 'Basic d3Jvbmc6' });
        assert.equal(refused.status, 401, 'a refusal arrives whole, not cut by the second call');
        assert.equal(codeOf(refused), 'SEG_AUTH_UNKNOWN');
        await sleep(80);
        assert.equal(saidTwice(logs), 1, logs.join('\n'));
        assert.equal(logs.filter((line) => /headers were already sent/.test(line)).length, 0);
      });
    });
  }
});
