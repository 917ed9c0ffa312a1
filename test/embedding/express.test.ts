// The contract cases through express 5 over real TLS: our middleware alone at /segment, behind
// express.json() and in front of it. Every host answers as the standalone server does, byte for byte;
// with a body parser in front, its refusals (bad JSON, too large) are our JSON refusals too.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import express, { type Express } from 'express';
import segmentEndpoint from '../../src/express.ts';
import { createServer, type EndpointServer, jsonLogger, silentLogger } from '../../src/index.ts';
import { testCert } from '../helpers-cert.ts';
import {
  type Answer,
  CASE_KEY,
  type ContractCase,
  caseOptions,
  fingerprint,
  mismatches,
  runCases,
  sendTo,
  served,
} from './cases.ts';

let standalone: EndpointServer;
let standaloneOrigin: string;
let baseline: Map<string, Answer>;

before(async () => {
  standalone = createServer({
    ...caseOptions(),
    tls: testCert(),
    host: '127.0.0.1',
    port: 0,
    log: silentLogger,
  });
  standaloneOrigin = new URL(await standalone.listen()).origin;
  baseline = await runCases(sendTo(standaloneOrigin));
});

after(() => standalone.close());

const options = (seen: string[] = []) => ({ ...caseOptions(seen), log: silentLogger });

/** Runs every case through `app` (endpoint at /segment) and checks it answered as the standalone server. */
async function answersAsStandalone(app: Express, seen: string[]): Promise<void> {
  await served(app, async (origin) => {
    const answers = await runCases(sendTo(origin, '/segment'));
    assert.deepEqual(mismatches(answers), []);
    assert.deepEqual([...answers], [...baseline]);
    assert.equal(fingerprint(answers), fingerprint(baseline));
  });
  assert.equal(seen.filter((id) => id === 'c-1').length, 1, 'the duplicate was not handled again');
}

const authed = { 'content-type': 'application/json', authorization: `Basic ${btoa(`${CASE_KEY}:`)}` };
const post = (name: string, body: string, path = '/'): ContractCase => ({
  name,
  path,
  method: 'POST',
  headers: authed,
  body,
  status: 0,
});

test('express: the middleware alone at /segment answers as the standalone server', async () => {
  const seen: string[] = [];
  const app = express();
  app.use('/segment', segmentEndpoint(options(seen)));
  await answersAsStandalone(app, seen);
});

test('express: behind express.json(), the same answers, bad JSON and oversized bodies included', async () => {
  const seen: string[] = [];
  const app = express();
  // Its default limit (100 KiB) is above ours (4096): ours applies to the declared length.
  app.use(express.json());
  app.use('/segment', segmentEndpoint(options(seen)));
  await answersAsStandalone(app, seen);
});

test('express: in front of express.json(), the same answers, and the app still parses its own bodies', async () => {
  const seen: string[] = [];
  const app = express();
  app.use('/segment', segmentEndpoint(options(seen)));
  app.use(express.json());
  app.post('/api', (req, res) => {
    res.json({ got: req.body });
  });
  await answersAsStandalone(app, seen);
  await served(app, async (origin) => {
    const answer = await sendTo(origin)(post('api', '{"a":1}', '/api'));
    assert.deepEqual(answer, { status: 200, body: '{"got":{"a":1}}' });
  });
});

test('express: behind express.json(), a body within the limits as sent is taken, however long JSON writes it again', async () => {
  // `1e20` is 4 bytes sent and 21 written: measured as written again, a 150 KB event was a 413 behind
  // express.json() (final: Segment drops it) that the standalone server takes, and so was a 20 KB
  // /v1/track body against the Tracking API's 32 KB. The limits are on the declared length.
  const numbers = (count: number) =>
    `{"type":"track","event":"e","userId":"u","properties":{"n":[${Array(count).fill('1e20').join(',')}]}}`;
  const [event, tracked] = [numbers(30_000), numbers(4_000)];
  assert.ok(event.length < 512 * 1024 && JSON.stringify(JSON.parse(event)).length > 512 * 1024);
  assert.ok(JSON.stringify(JSON.parse(tracked)).length > 32 * 1024);
  const bodies = [post('150 KB, 660 KB written', event), post('/v1/track', tracked, '/v1/track')];
  const taken: unknown[] = [];
  const handlers = {
    track: (event: { properties?: { n?: unknown[] } }) => void taken.push(event.properties?.n?.length),
  };
  const app = express();
  app.use(express.json({ limit: '5mb' }));
  app.use('/segment', segmentEndpoint({ apiKeys: [CASE_KEY], handlers, log: silentLogger }));
  await served(app, async (origin) => {
    const answers = await Promise.all(bodies.map(sendTo(origin, '/segment')));
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200],
      answers.map((a) => a.body).join('\n'),
    );
  });
  assert.deepEqual(taken.sort(), [30_000, 4_000].sort(), 'each handled once');
});

test('express: what a parser in front lets through, our guards still refuse, in the same words', async () => {
  const app = express();
  app.use(express.json({ limit: '1mb' }));
  app.use('/segment', segmentEndpoint(options()));
  const deep = `${'['.repeat(80)}${']'.repeat(80)}`;
  const bodies = [
    post('a __proto__ key', '{"type":"track","event":"e","userId":"u","__proto__":{"admin":true}}'),
    post('nested too deep', `{"type":"track","event":"e","userId":"u","properties":{"x":${deep}}}`),
    post('a number beyond a double', '{"type":"track","event":"e","userId":"u","properties":{"n":1e400}}'),
    post('an empty body', ''),
    post('JSON that is not an object', '123'),
  ];
  await served(app, async (origin) => {
    const ours = await Promise.all(bodies.map(sendTo(origin, '/segment')));
    const theirs = await Promise.all(bodies.map(sendTo(standaloneOrigin)));
    assert.deepEqual(ours, theirs);
    const codes = ours.map(({ status, body }) => `${status} ${JSON.parse(body).code}`);
    assert.deepEqual(codes, [
      '400 SEG_FORBIDDEN_KEY',
      '400 SEG_TOO_DEEP',
      '400 SEG_INVALID_JSON',
      '400 SEG_INVALID_JSON',
      '400 SEG_NOT_OBJECT',
    ]);
  });
});

test('express: a parser whose reviver makes values JSON has not (Dates) hands over the event as JSON would write it', async () => {
  // A host's express.json({ reviver }) turning timestamps into Dates made every event a 400 ("timestamp
  // must be a string"), which Segment does not retry: valid events dropped. Taken as JSON.stringify
  // writes them, a Date is its ISO string again.
  const app = express();
  const iso = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
  const reviver = (_key: string, value: unknown) =>
    typeof value === 'string' && iso.test(value) ? new Date(value) : value;
  app.use(express.json({ reviver }));
  const taken: Array<Record<string, unknown>> = [];
  const track = (event: Record<string, unknown>) => void taken.push(event);
  app.use('/segment', segmentEndpoint({ ...options(), handlers: { track } }));
  const at = '2026-11-26T10:00:00.000Z';
  const event = { type: 'track', event: 'E', userId: 'u', timestamp: at, properties: { at, n: 1 } };
  await served(app, async (origin) => {
    const answer = await sendTo(origin, '/segment')(post('revived', JSON.stringify(event)));
    assert.equal(answer.status, 200, answer.body);
  });
  assert.equal(taken.length, 1);
  assert.equal(taken[0]?.timestamp, at);
  assert.deepEqual(taken[0]?.properties, { at, n: 1 });
});

test('express: a parsed body the endpoint cannot write again (a bigint, a cycle) is our JSON 500, compressed or chunked too', async () => {
  // Compressed or chunked, a parsed body is measured by writing it again; a bigint there threw out of
  // the middleware, and express answered its own HTML page; a cycle was a final 413 or 400. The host's
  // parser is at fault: a 500 in JSON, retried.
  const app = express();
  const reviver = (key: string, value: unknown) => (key === 'n' ? BigInt(value as number) : value);
  app.use(express.json({ reviver }));
  app.use((req, _res, next) => {
    if (req.headers['x-loop'] !== undefined) req.body.properties.self = req.body;
    next();
  });
  app.use('/segment', segmentEndpoint({ ...options(), log: silentLogger }));
  const event = JSON.stringify({ type: 'track', event: 'e', userId: 'u', properties: { n: 1 } });
  const sent = (name: string, headers: Record<string, string>): ContractCase => ({
    ...post(name, ''),
    headers: { ...authed, ...headers },
    body: gzipSync(event),
  });
  await served(app, async (origin) => {
    const send = sendTo(origin, '/segment');
    for (const c of [
      sent('gzip, a bigint', { 'content-encoding': 'gzip' }),
      sent('gzip, a cycle', { 'content-encoding': 'gzip', 'x-loop': '1' }),
      { ...post('plain, a cycle', event), headers: { ...authed, 'x-loop': '1' } },
    ]) {
      const answer = await send(c);
      assert.equal(answer.status, 500, `${c.name}: ${answer.body}`);
      assert.equal(JSON.parse(answer.body).code, 'SEG_INTERNAL', c.name);
    }
  });
});

test("express: with accessLog, the middleware's own refusals of a parser's work each have their line", async () => {
  // A body over the parser's limit, a compressed body that does not decode, a charset we do not read:
  // answered by the middleware, counted in the metrics, and missing from the access log.
  const app = express();
  app.use(express.json({ limit: 1000 }));
  const lines: Array<{ msg: string; status?: number; code?: string }> = [];
  const log = jsonLogger('info', (line) => lines.push(JSON.parse(line)));
  app.use('/segment', segmentEndpoint({ ...options(), log, accessLog: true }));
  const big = JSON.stringify({
    type: 'track',
    event: 'e',
    userId: 'u',
    properties: { pad: 'x'.repeat(5000) },
  });
  const event = JSON.stringify({ type: 'track', event: 'e', userId: 'u' });
  await served(app, async (origin) => {
    const send = sendTo(origin, '/segment');
    for (const [c, status, code] of [
      [post('over the parser limit', big), 413, 'SEG_BODY_TOO_LARGE'],
      [
        { ...post('bad gzip', 'nope'), headers: { ...authed, 'content-encoding': 'gzip' } },
        400,
        'SEG_BAD_ENCODING',
      ],
      [
        {
          ...post('utf-16', ''),
          headers: { ...authed, 'content-type': 'application/json; charset=utf-16le' },
          body: Buffer.from(event, 'utf16le'),
        },
        415,
        'SEG_UNSUPPORTED_MEDIA_TYPE',
      ],
    ] as const) {
      lines.length = 0;
      const answer = await send(c);
      assert.equal(answer.status, status, `${c.name}: ${answer.body}`);
      assert.equal(JSON.parse(answer.body).code, code, c.name);
      const logged = lines.filter((line) => line.msg === 'event');
      assert.deepEqual(
        logged.map((line) => [line.status, line.code]),
        [[status, code]],
        c.name,
      );
    }
  });
});

test("express: a parsed body whose getter throws a RangeError is our JSON 500, logged, never express's HTML page", async () => {
  // Compressed or chunked, the body is measured by writing it again. A RangeError there was taken for a
  // body nested past the stack and measured by walking it, and the getter's second throw left the
  // middleware: express answered its HTML page with the stack, and the endpoint logged nothing.
  const app = express();
  app.use(express.json());
  app.use((req, _res, next) => {
    req.body = Object.defineProperty({ ...req.body }, 'ts', {
      enumerable: true,
      get() {
        throw new RangeError('the host getter failed');
      },
    });
    next();
  });
  const logged: string[] = [];
  app.use(
    '/segment',
    segmentEndpoint({ ...options(), log: jsonLogger('info', (line) => logged.push(line)) }),
  );
  const event = JSON.stringify({ type: 'track', event: 'e', userId: 'u' });
  await served(app, async (origin) => {
    const send = sendTo(origin, '/segment');
    for (const headers of [{ 'content-encoding': 'gzip' }, {}]) {
      const c = { ...post('a getter that throws', ''), headers: { ...authed, ...headers } };
      const answer = await send({ ...c, body: headers['content-encoding'] ? gzipSync(event) : event });
      assert.equal(answer.status, 500, answer.body);
      assert.deepEqual(JSON.parse(answer.body), { message: 'Internal error', code: 'SEG_INTERNAL' });
    }
  });
  assert.equal(logged.filter((line) => line.includes('the host getter failed')).length, 2);
});

test('express: a signed event behind express.raw() is checked on its bytes; behind express.json(), on JSON.stringify of it', async () => {
  const secret = 'signing-secret';
  const text = '{ "type": "track", "event": "e", "userId": "u" }'; // not as JSON.stringify writes it
  const signed = (body: string, name: string): ContractCase => ({
    ...post(name, body),
    headers: { ...authed, 'x-segment-signature': createHmac('sha1', secret).update(body).digest('hex') },
  });
  const answers = async (parser: express.RequestHandler) => {
    const app = express();
    app.use(parser);
    app.use('/segment', segmentEndpoint({ ...options(), signatureSecret: secret }));
    const statuses: number[] = [];
    await served(app, async (origin) => {
      const send = sendTo(origin, '/segment');
      statuses.push((await send(signed(JSON.stringify(JSON.parse(text)), 'compact'))).status);
      statuses.push((await send(signed(text, 'spaced'))).status);
    });
    return statuses;
  };
  assert.deepEqual(await answers(express.raw({ type: 'application/json' })), [200, 200]);
  assert.deepEqual(await answers(express.json()), [200, 401], 'the spaced bytes are gone');
});

test("express: a parser's limit below ours is the one that refuses, with our JSON 413", async () => {
  const app = express();
  app.use(express.json({ limit: 1000 }));
  app.use('/segment', segmentEndpoint(options()));
  await served(app, async (origin) => {
    const answer = await sendTo(origin, '/segment')(post('big', JSON.stringify({ pad: 'x'.repeat(2000) })));
    assert.equal(answer.status, 413);
    assert.deepEqual(JSON.parse(answer.body), {
      message: 'Request body is larger than the limit of 1000 bytes',
      code: 'SEG_BODY_TOO_LARGE',
    });
  });
});

test("express: the parser's other refusals of the body are ours; its verify function's are the app's", async () => {
  const app = express();
  app.use(
    express.json({
      verify: (req) => {
        if (req.headers['x-app-veto'] !== undefined) throw new Error('vetoed by the app');
      },
    }),
  );
  app.use('/segment', segmentEndpoint(options()));
  app.use(
    (err: { type?: string }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(418).send(`the app's handler: ${err.type}`);
    },
  );
  const event = '{"type":"track","event":"e","userId":"u"}';
  const compress = { ...post('compress', event), headers: { ...authed, 'content-encoding': 'compress' } };
  const latin1 = {
    ...post('latin1', event),
    headers: { ...authed, 'content-type': 'application/json; charset=latin1' },
  };
  const vetoed = { ...post('vetoed', event), headers: { ...authed, 'x-app-veto': '1' } };
  await served(app, async (origin) => {
    const send = sendTo(origin, '/segment');
    // A coding neither reads: the standalone server's words.
    assert.deepEqual(await send(compress), await sendTo(standaloneOrigin)(compress));
    const charset = await send(latin1);
    assert.equal(charset.status, 415);
    assert.equal(JSON.parse(charset.body).code, 'SEG_UNSUPPORTED_MEDIA_TYPE');
    assert.deepEqual(await send(vetoed), { status: 418, body: "the app's handler: entity.verify.failed" });
  });
});

test('express: behind express.json(), a coding that does not decode, or that we do not take, is refused in our words', async () => {
  const app = express();
  app.use(express.json());
  app.use('/segment', segmentEndpoint(options()));
  const event = Buffer.from('{"type":"track","event":"e","userId":"u"}');
  const coded = (name: string, coding: string, body: Buffer): ContractCase => ({
    ...post(name, ''),
    headers: { ...authed, 'content-encoding': coding },
    body,
  });
  const cases = [
    coded('gzip that is not', 'gzip', Buffer.from('this is not gzip')),
    coded('gzip cut short', 'gzip', gzipSync(event).subarray(0, 20)),
    coded('deflate that is not', 'deflate', Buffer.from('nor is this deflate')),
    coded('brotli, which body-parser reads and we do not', 'br', brotliCompressSync(event)),
  ];
  await served(app, async (origin) => {
    const ours = await Promise.all(cases.map(sendTo(origin, '/segment')));
    const theirs = await Promise.all(cases.map(sendTo(standaloneOrigin)));
    assert.deepEqual(ours, theirs);
    assert.deepEqual(
      ours.map(({ status, body }) => `${status} ${JSON.parse(body).code}`),
      [
        '400 SEG_BAD_ENCODING',
        '400 SEG_BAD_ENCODING',
        '400 SEG_BAD_ENCODING',
        '415 SEG_UNSUPPORTED_ENCODING',
      ],
    );
  });
});

test('express: behind express.json(), a charset other than UTF-8 is refused as the standalone server refuses it', async () => {
  // body-parser decodes UTF-16 by the charset; the standalone server takes UTF-8 JSON only (415).
  const app = express();
  app.use(express.json());
  app.use('/segment', segmentEndpoint(options()));
  const text = '{"type":"track","event":"e","userId":"u"}';
  const inCharset = (charset: string, body: Buffer): ContractCase => ({
    ...post(`JSON in ${charset}`, ''),
    headers: { ...authed, 'content-type': `application/json; charset=${charset}` },
    body,
  });
  const cases = [
    inCharset('utf-16le', Buffer.from(text, 'utf16le')),
    inCharset('utf-16', Buffer.from(text)),
    inCharset('UTF-8', Buffer.from(text)),
    inCharset('us-ascii', Buffer.from(text)),
    // On the Tracking API's paths the charset is not looked at, as the type is not (CONTRACT.md).
    { ...inCharset('latin1', Buffer.from(text)), path: '/v1/track' },
    // But for UTF-16 and UTF-32, whose bytes cannot be JSON's: refused alike.
    { ...inCharset('utf-16', Buffer.from(text)), path: '/v1/track' },
  ];
  await served(app, async (origin) => {
    const ours = await Promise.all(cases.map(sendTo(origin, '/segment')));
    const theirs = await Promise.all(cases.map(sendTo(standaloneOrigin)));
    assert.deepEqual(ours, theirs);
    assert.deepEqual(
      ours.map(({ status }) => status),
      [415, 415, 200, 200, 200, 415],
    );
  });
});

test('express: a body a middleware read before ours (no req.body left) is a 500 at once, which Segment retries', async () => {
  // A raw-body logger or a signature check of the app's own read the stream to its end: there is no
  // event left to take. The request waited for a body that never came, and was never answered.
  const app = express();
  app.use((req, _res, next) => {
    req.on('data', () => {});
    req.on('end', () => next());
  });
  app.use('/segment', segmentEndpoint({ ...options(), bodyTimeoutMs: 30_000 }));
  await served(app, async (origin) => {
    const event = { type: 'track', event: 'Signed Up', userId: 'u1', messageId: 'read-before' };
    const answer = await sendTo(origin, '/segment')(post('an event', JSON.stringify(event)));
    assert.equal(answer.status, 500, answer.body);
    assert.equal(JSON.parse(answer.body).code, 'SEG_INTERNAL');
  });
});

test('express: errors of requests outside the mount are left to the app', async () => {
  const app = express();
  app.use(express.json());
  app.use('/segment', segmentEndpoint(options()));
  app.post('/api', (_req, res) => {
    res.send('unreached');
  });
  app.use(
    (err: { type?: string }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(418).send(`the app's handler: ${err.type}`);
    },
  );
  await served(app, async (origin) => {
    const answer = await sendTo(origin)(post('bad JSON to the app', '{', '/api'));
    assert.deepEqual(answer, { status: 418, body: "the app's handler: entity.parse.failed" });
  });
});

test('express: mounted at the root, it serves its own paths only, and leaves the rest to the app', async () => {
  const app = express();
  app.use(express.json());
  app.use(segmentEndpoint({ ...options(), path: '/segment', healthPath: '/segment/health' }));
  app.get('/api', (_req, res) => {
    res.send('the app');
  });
  app.use(
    (err: { type?: string }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(418).send(`the app's handler: ${err.type}`);
    },
  );
  await served(app, async (origin) => {
    const send = sendTo(origin);
    assert.deepEqual(await send({ ...post('app', ''), method: 'GET', path: '/api' }), {
      status: 200,
      body: 'the app',
    });
    const appError = await send(post('bad JSON to the app', '{', '/api'));
    assert.deepEqual(appError, { status: 418, body: "the app's handler: entity.parse.failed" });
    const ours = await send(post('bad JSON to us', '{', '/segment'));
    assert.equal(ours.status, 400);
    assert.equal(JSON.parse(ours.body).code, 'SEG_INVALID_JSON');
    const event = await send(
      post('an event', '{"type":"track","event":"e","userId":"u"}', '/segment/v1/track'),
    );
    assert.equal(event.status, 200);
  });
});

test('express: mounted as a route (app.post), the route is its event path, behind a parser or not', async () => {
  // The route's full path is no path of ours below a mount: every event went on to express's HTML 404,
  // which Segment does not retry.
  const seen: string[] = [];
  for (const parsed of [false, true]) {
    const app = express();
    if (parsed) app.use(express.json());
    app.post('/segment', segmentEndpoint(options(seen)));
    await served(app, async (origin) => {
      const send = sendTo(origin);
      const event = `{"type":"track","event":"e","userId":"u","messageId":"routed-${parsed}"}`;
      assert.deepEqual(await send(post('an event', event, '/segment?x=1')), { status: 200, body: '' });
      if (parsed) return; // a parser's refusal skips every route: the app's error handler answers it
      const bad = await send(post('bad JSON', '{', '/segment'));
      assert.equal(bad.status, 400);
      assert.equal(JSON.parse(bad.body).code, 'SEG_INVALID_JSON');
    });
  }
  assert.deepEqual(seen, ['routed-false', 'routed-true']);
});

test('express: mounted as a wildcard route (app.all), the paths below it route as below a mount', async () => {
  // Every path the wildcard matched was made the event path: an SDK's /segment/v1/batch a 400 (its
  // batch read as one event, dropped for good), /segment/health a 405, a mistyped path taken as an event.
  const seen: string[] = [];
  const app = express();
  const segment = segmentEndpoint(options(seen));
  app.all('/segment', segment);
  app.all('/segment/*rest', segment);
  app.use((_req, res) => {
    res.status(404).send("the app's 404");
  });
  await served(app, async (origin) => {
    const send = sendTo(origin);
    const event = (id: string) => `{"type":"track","event":"e","userId":"u","messageId":"${id}"}`;
    assert.equal((await send(post('the event path', event('w-1'), '/segment'))).status, 200);
    const batch = await send(post('a batch', `{"batch":[${event('w-2')}]}`, '/segment/v1/batch?x=1'));
    assert.deepEqual(batch, { status: 200, body: '' });
    assert.equal(
      (await send(post('one of the Tracking API', event('w-3'), '/segment/v1/track'))).status,
      200,
    );
    const health = await send({ ...post('health', ''), method: 'GET', path: '/segment/health' });
    assert.equal(health.status, 200, health.body);
    const typo = await send(post('a path of nobody', event('w-4'), '/segment/trak'));
    assert.deepEqual(typo, { status: 404, body: "the app's 404" });
  });
  assert.deepEqual(seen, ['w-1', 'w-2', 'w-3']);
});

test('express: below a wildcard route, a path is matched as sent, as below a mount: escapes are not decoded into ours', async () => {
  // Express decodes what a wildcard matched: /segment/m%65trics served the metrics, which a proxy rule
  // hiding /segment/metrics by its path let through, and /segment/v1%2Fbatch was a batch. Below
  // app.use('/segment'), and on the standalone server, neither is ours.
  const seen: string[] = [];
  const event = '{"type":"track","event":"e","userId":"u","messageId":"raw-1"}';
  const get = (path: string) => ({ ...post(path, ''), method: 'GET', path });
  const requests = [
    get('/segment/metrics'),
    get('/segment/m%65trics'),
    get('/segment/metrics/'),
    post('%2F', `{"batch":[${event}]}`, '/segment/v1%2Fbatch'),
    post('an escaped letter', event, '/segment/v1/%74rack'),
  ];
  const statuses = async (mount: (app: Express, segment: ReturnType<typeof segmentEndpoint>) => void) => {
    const app = express();
    mount(app, segmentEndpoint({ ...options(seen), metricsPath: '/metrics' }));
    app.use((_req, res) => {
      res.status(404).send("the app's 404");
    });
    let answers: Answer[] = [];
    await served(app, async (origin) => {
      answers = await Promise.all(requests.map(sendTo(origin)));
    });
    return answers.map((a) => a.status);
  };
  const routed = await statuses((app, segment) => {
    app.all('/segment', segment);
    app.all('/segment/*rest', segment);
  });
  const mounted = await statuses((app, segment) => app.use('/segment', segment));
  assert.deepEqual(routed, [200, 404, 404, 404, 200]);
  assert.deepEqual(routed, mounted);
  assert.deepEqual(seen, ['raw-1', 'raw-1']);
});

test('express: an optional wildcard that matched nothing is the event path, whatever the path option', async () => {
  // It was made `/`: with `path: '/events'`, POST /segment became a 404, which Segment does not retry.
  const seen: string[] = [];
  const app = express();
  app.all('/segment{/*rest}', segmentEndpoint({ ...options(seen), path: '/events' }));
  await served(app, async (origin) => {
    const event = '{"type":"track","event":"e","userId":"u","messageId":"optional-1"}';
    assert.deepEqual(await sendTo(origin)(post('the route itself', event, '/segment')), {
      status: 200,
      body: '',
    });
  });
  assert.deepEqual(seen, ['optional-1']);
});

test("express: the route shapes express 4 gives: only a bare or named wildcard's match is a path below", () => {
  // express 4 is not installed: the middleware is called with the route and params it would give. A `*`
  // after a name or in a pattern (`:path*`, `:id(\d*)`) was taken for a wildcard: its requests made `/`.
  const [serve] = segmentEndpoint(options());
  const cases = [
    ['/segment/*', '/segment/v1/batch', { 0: 'v1/batch' }, '/v1/batch'],
    ['/segment*', '/segment/v1/batch', { 0: '/v1/batch' }, '/'],
    ['/segment/:path*', '/segment/v1/batch', { path: 'v1/batch' }, '/'],
    ['/segment/:id(\\d*)', '/segment/123', { id: '123' }, '/'],
    ['/segment/(x)?/*', '/segment/v1/batch', { 0: undefined, 1: 'v1/batch' }, '/'],
  ] as const;
  for (const [route, url, params, routed] of cases) {
    const req = {
      path: url,
      url,
      method: 'GET',
      headers: {},
      params,
      route: { path: route, stack: [{ handle: serve }] },
    };
    let passed = false;
    // Taken, it reaches the handler, which refuses an object that is no request of Node's: its url is set.
    assert.throws(() =>
      serve(req as unknown as express.Request, {} as express.Response, () => {
        passed = true;
      }),
    );
    assert.deepEqual([passed, req.url], [false, routed], `${route} ${url}`);
  }
});

test('express: options inherited from a prototype route as they are handled (the path, at the root)', async () => {
  // The handler took the inherited path; the middleware's own routing, from a spread copy, did not, and
  // passed the event path's requests on to the app.
  const app = express();
  const defaults = { path: '/segment', healthPath: '/segment/health' };
  app.use(segmentEndpoint(Object.assign(Object.create(defaults), options())));
  await served(app, async (origin) => {
    const send = sendTo(origin);
    const event = await send(post('an event', '{"type":"track","event":"e","userId":"u"}', '/segment'));
    assert.equal(event.status, 200, event.body);
    const health = await send({ ...post('health', ''), method: 'GET', path: '/segment/health' });
    assert.equal(health.status, 200, health.body);
  });
});

test('express: options are read once: a getter that answers differently each time routes as the handler handles', async () => {
  const app = express();
  let reads = 0;
  app.use(
    segmentEndpoint(
      Object.defineProperty(options(), 'path', {
        enumerable: true,
        get: () => (reads++ === 0 ? '/first' : '/second'),
      }),
    ),
  );
  await served(app, async (origin) => {
    const event = await sendTo(origin)(
      post('an event', '{"type":"track","event":"e","userId":"u"}', '/first'),
    );
    assert.equal(event.status, 200, event.body);
  });
});

test('express: drain() makes new events 503 and health draining; a bad option throws at the call', async () => {
  const app = express();
  const segment = segmentEndpoint(options());
  app.use('/segment', segment);
  await served(app, async (origin) => {
    const send = sendTo(origin, '/segment');
    // Keys replaced while serving: the old one refused from the next request on.
    const keyed = (key: string) => ({
      ...post('keyed', '{"type":"track","event":"e","userId":"u"}'),
      headers: { ...authed, authorization: `Basic ${btoa(`${key}:`)}` },
    });
    segment.setApiKeys(['swapped-key']);
    assert.equal((await send(keyed('swapped-key'))).status, 200);
    assert.equal((await send(keyed(CASE_KEY))).status, 401);
    await segment.loadApiKeys(['loaded-key', CASE_KEY]);
    assert.equal((await send(keyed('loaded-key'))).status, 200);
    segment.setSignatureSecret('embedded-secret'); // from the next request on, every one must be signed
    assert.equal(JSON.parse((await send(keyed('loaded-key'))).body).code, 'SEG_SIGNATURE_MISSING');
    const signed = keyed('loaded-key');
    const signature = createHmac('sha1', 'embedded-secret').update(String(signed.body)).digest('hex');
    assert.equal(
      (await send({ ...signed, headers: { ...signed.headers, 'x-signature': signature } })).status,
      200,
    );
    segment.setApiKeys([CASE_KEY]);
    assert.equal(segment.draining, false);
    segment.drain();
    assert.equal(segment.draining, true);
    const event = await send(post('while draining', '{"type":"track","event":"e","userId":"u"}'));
    assert.equal(event.status, 503);
    assert.equal(JSON.parse(event.body).code, 'SEG_DRAINING');
    const health = await send({ ...post('health', ''), method: 'GET', path: '/health', body: undefined });
    assert.deepEqual(health, { status: 503, body: '{"status":"draining"}' });
    assert.equal(segment.inFlight, 0);
    await segment.idle();
  });
  assert.throws(() => segmentEndpoint({ handlers: {}, apiKeys: [] }), /apiKeys must hold at least one key/);
  assert.throws(() => segmentEndpoint({ ...options(), path: 'segment' }), /options\.path/);
});

test("express: a streamed body over our limit is refused even when the parser's limit is larger", async () => {
  const app = express();
  app.use(express.json({ limit: '1mb' }));
  app.use(express.urlencoded({ extended: false, parameterLimit: 10 }));
  app.use('/segment', segmentEndpoint(options()));
  await served(app, async (origin) => {
    const { request } = await import('node:https');
    const big = JSON.stringify({
      type: 'track',
      event: 'e',
      userId: 'u',
      properties: { pad: 'x'.repeat(20_000) },
    });
    const send = (type: string, body: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request(`${origin}/segment`, {
          method: 'POST',
          headers: { ...post('x', '').headers, 'content-type': type, 'transfer-encoding': 'chunked' },
          ca: testCert().cert,
          servername: 'localhost',
          agent: false,
        });
        req.on('response', (res) => {
          let text = '';
          res.on('data', (c: Buffer) => {
            text += c.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        });
        req.on('error', reject);
        req.write(body.slice(0, 100));
        req.end(body.slice(100));
      });
    const streamed = await send('application/json', big);
    assert.equal(streamed.status, 413, streamed.body);
    assert.equal(JSON.parse(streamed.body).code, 'SEG_BODY_TOO_LARGE');
    const form = await send(
      'application/x-www-form-urlencoded',
      Array.from({ length: 20 }, (_, i) => `k${i}=v`).join('&'),
    );
    assert.equal(form.status, 413, 'a form with too many fields: our JSON, not the HTML page');
    assert.equal(JSON.parse(form.body).code, 'SEG_BODY_TOO_LARGE');
  });
});

test('express: behind express.json(), x-gzip is read as the standalone server reads it, and gzip held to maxBodyBytes decompressed', async () => {
  // body-parser takes no x-gzip: its 415, made before it read a byte, was ours and final (the event
  // lost). And it decompresses gzip to its own limit: under a larger one than maxBodyBytes, a small body
  // that inflated past ours reached the handlers (the limit applied to the declared, compressed length).
  const app = express();
  app.use(express.json({ limit: '1mb' }));
  app.use('/segment', segmentEndpoint({ ...options(), maxBodyBytes: 4096 }));
  const event = (pad: number) =>
    gzipSync(
      JSON.stringify({ type: 'track', event: 'e', userId: 'u', properties: { pad: 'x'.repeat(pad) } }),
    );
  const coded = (name: string, coding: string, body: Buffer): ContractCase => ({
    ...post(name, ''),
    headers: { ...authed, 'content-encoding': coding },
    body,
  });
  await served(app, async (origin) => {
    const send = sendTo(origin, '/segment');
    const xgzip = await send(coded('x-gzip', 'x-gzip', event(10)));
    assert.equal(xgzip.status, 200, xgzip.body);
    const inflated = await send(coded('gzip past maxBodyBytes once inflated', 'gzip', event(20_000)));
    assert.equal(inflated.status, 413, inflated.body);
    assert.equal(JSON.parse(inflated.body).code, 'SEG_BODY_TOO_LARGE');
    assert.equal((await send(coded('gzip within it', 'gzip', event(1000)))).status, 200);
  });
});

test('express: behind express.json(), a compressed body nested past any stack is refused in our words, not a 500', async () => {
  // A compressed (or chunked) body the parser read is measured by serialising it again: JSON.stringify
  // recurses, and a body nested thousands deep (a few KiB, within the parser's limit) overflowed the
  // stack there, which express answered with its own HTML 500 (the stack in it outside production),
  // a failure Segment retries for hours, instead of the standalone server's final 400 or 413.
  const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
  const text = `{"type":"track","event":"e","userId":"u","properties":{"x":${deep}}}`;
  const gzipped: ContractCase = {
    ...post('gzip, nested 20,000 deep', ''),
    headers: { ...authed, 'content-encoding': 'gzip' },
    body: gzipSync(text),
  };
  // Over maxBodyBytes (4096) as well: the standalone server's 413.
  const small = express();
  small.use(express.json());
  small.use('/segment', segmentEndpoint(options()));
  await served(small, async (origin) => {
    const ours = await sendTo(origin, '/segment')(gzipped);
    const theirs = await sendTo(standaloneOrigin)(gzipped);
    assert.equal(ours.status, 413, ours.body);
    assert.equal(JSON.parse(ours.body).code, 'SEG_BODY_TOO_LARGE');
    assert.equal(JSON.parse(theirs.body).code, 'SEG_BODY_TOO_LARGE');
  });
  // Within it: its depth is what is wrong.
  const large = express();
  large.use(express.json());
  large.use('/segment', segmentEndpoint({ ...options(), maxBodyBytes: 524_288 }));
  await served(large, async (origin) => {
    const ours = await sendTo(origin, '/segment')(gzipped);
    assert.equal(ours.status, 400, ours.body);
    assert.deepEqual(JSON.parse(ours.body), {
      message: 'Request body nests deeper than 64 levels',
      code: 'SEG_TOO_DEEP',
    });
  });
});

test("express: a class's misspelt handler is warned of once, as createHandler warns of it", () => {
  // The mount resolves its options a second time for its paths: that resolution said every warning again.
  const lines: string[] = [];
  const log = jsonLogger('debug', (line) => lines.push(JSON.parse(line).msg));
  class Misspelt {
    track() {}
    idenitfy() {}
  }
  segmentEndpoint({ ...caseOptions(), handlers: new Misspelt(), log });
  assert.deepEqual(
    lines.filter((line) => line.includes('options.handlers.')),
    [
      'options.handlers.idenitfy is not a Segment event type: did you mean identify? identify events are answered 501',
    ],
  );
});

test('express: a body kept as text or bytes has its Content-Type checked as one read by the endpoint', async () => {
  // express.text() and express.raw() for every type hand over the body unparsed: the type it was sent
  // as is still the sender's to get right, a 415 as the standalone server answers, not taken as JSON.
  // The Tracking API's paths take JSON however an SDK labels it (RudderStack's, as a form), as standalone.
  const event = '{"type":"track","event":"e","userId":"u"}';
  const sentAs = (type: string, path = '/'): ContractCase => ({
    ...post(type, event, path),
    headers: { ...authed, 'content-type': type },
  });
  for (const parser of [express.text({ type: '*/*' }), express.raw({ type: '*/*' })]) {
    const seen: string[] = [];
    const app = express();
    app.use(parser);
    app.use('/segment', segmentEndpoint(options(seen)));
    await served(app, async (origin) => {
      const send = sendTo(origin, '/segment');
      for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
        const answer = await send(sentAs(type));
        assert.equal(answer.status, 415, `${type}: ${answer.body}`);
        assert.equal(JSON.parse(answer.body).code, 'SEG_UNSUPPORTED_MEDIA_TYPE');
      }
      assert.equal((await send(sentAs('application/json; charset=utf-8'))).status, 200);
      const form = await send(sentAs('application/x-www-form-urlencoded', '/v1/track'));
      assert.equal(form.status, 200, form.body);
    });
    assert.equal(seen.length, 2, 'the event sent as JSON, and the Tracking API one');
  }
});
