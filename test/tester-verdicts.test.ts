// `segment-endpoint test` against endpoints that break the contract in ways a 501 or a resent request
// could hide: its verdict must be the contract's, and each case sent once.
import assert from 'node:assert/strict';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { test } from 'node:test';
import { createServer, silentLogger } from '../src/index.ts';
import { loadMain } from '../src/load/command.ts';
import { probe } from '../src/probe.ts';
import { testMain } from '../src/tester/command.ts';
import { run } from '../src/tester/run.ts';
import { suite } from '../src/tester/suite.ts';
import { testCert } from './helpers-cert.ts';

const KEY = 'tester-key';
const CASES = suite({ id: 'x', apiKey: KEY, now: new Date() });
const ok = () => {};

async function listen(t: { after(fn: () => void): void }, server: Server): Promise<string> {
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const scheme = server instanceof HttpsServer ? 'https' : 'http';
  return `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

/**
 * A server (over TLS with `tls`) that reads each body whole, then lets `answer` write the response;
 * `received` counts the POSTs.
 */
function bodies(answer: (req: IncomingMessage, res: ServerResponse, body: string) => void, tls = false) {
  let received = 0;
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => {
      if (req.method === 'POST') received++;
      answer(req, res, body);
    });
  };
  const server = tls ? createHttpsServer(testCert(), listener) : createHttpServer(listener);
  return { server, received: () => received };
}

/** How the endpoints here write a refusal's body: as the contract asks, or as some servers do. */
type Refusals = 'json' | 'problem+json' | 'empty' | 'html' | 'json-seq' | 'stack';

const reply = (res: ServerResponse, status: number, message?: string, refusals: Refusals = 'json') => {
  let type = 'application/json; charset=utf-8';
  const shown = refusals === 'stack' ? `Error: ${message}\n    at handle (/srv/app/server.js:12:5)` : message;
  let body = shown === undefined ? '' : JSON.stringify({ message: shown });
  if (refusals === 'empty') body = '';
  if (refusals === 'html' && message !== undefined) [type, body] = ['text/html', `<h1>${message}</h1>`];
  if (refusals === 'problem+json' || refusals === 'json-seq') type = `application/${refusals}`;
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
};

/** A 405 whose `Allow` says `methods`. */
const allowing = (res: ServerResponse, methods: string) => {
  res.setHeader('allow', methods);
  reply(res, 405, 'No');
};

/** How an endpoint strays from the careful one below. */
interface Strays {
  /** Refused with a 400, though the contract lets an event be so. */
  readonly refuses?: (event: Record<string, unknown>, req: IncomingMessage) => boolean;
  /** Every answer closes its connection. */
  readonly closes?: boolean;
  /** What a method other than POST is answered (405 with `Allow: POST` when absent). */
  readonly otherMethods?: (res: ServerResponse) => void;
}

/**
 * The contract as a careful endpoint keeps it, but for what `broken` answers 501 (a 501 stands for "this
 * type is not taken", which the suite allows only for types the endpoint takes nowhere) and its `strays`.
 */
function endpoint(
  broken: (event: Record<string, unknown>) => boolean,
  refusals: Refusals = 'json',
  strays: Strays = {},
) {
  const good = [`Basic ${btoa(`${KEY}:`)}`, `basic ${btoa(`${KEY}:`)}`, `Basic ${btoa(KEY)}`];
  const required: Record<string, string[]> = {
    track: ['event'],
    group: ['groupId'],
    alias: ['previousId'],
    delete: ['userId'],
  };
  return bodies((req, res, body) => {
    const refuse = (status: number, message: string) => reply(res, status, message, refusals);
    if (strays.closes) res.setHeader('connection', 'close');
    if (req.method !== 'POST') {
      if (strays.otherMethods) return strays.otherMethods(res);
      res.setHeader('allow', 'POST');
      return refuse(405, 'POST only');
    }
    if (!good.includes(req.headers.authorization ?? '')) return refuse(401, 'Invalid API key');
    const settings = req.headers['x-segment-settings'];
    try {
      const parsed = settings === undefined ? {} : JSON.parse(atob(String(settings)));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error();
    } catch {
      return refuse(400, 'bad settings');
    }
    let event: Record<string, unknown>;
    try {
      event = JSON.parse(body);
      if (typeof event !== 'object' || event === null || Array.isArray(event)) throw new Error();
    } catch {
      return refuse(400, 'bad JSON');
    }
    if (typeof event.type !== 'string') return refuse(400, 'no type');
    const type = event.type.toLowerCase();
    if (!['identify', 'track', 'page', 'screen', 'group', 'alias', 'delete'].includes(type)) {
      return refuse(501, 'unsupported type');
    }
    if (broken(event)) return refuse(501, 'unsupported');
    const id = (k: string) => ['userid', 'anonymousid', 'user_id', 'anonymous_id'].includes(k.toLowerCase());
    const ids = Object.keys(event).some((k) => id(k) && typeof event[k] === 'string');
    if (!ids || (required[type] ?? []).some((key) => event[key] === undefined)) {
      return refuse(400, 'missing field');
    }
    if (strays.refuses?.(event, req)) return refuse(400, 'refused');
    reply(res, 200);
  });
}

const failedNames = (summary: { results: ReadonlyArray<{ name: string; pass: boolean }> }) =>
  summary.results.filter((r) => !r.pass).map((r) => r.name);

test('a careful endpoint passes every case: the endpoint the cases below break one way each', async (t) => {
  const { server } = endpoint(() => false);
  const lines: string[] = [];
  const summary = await run(await listen(t, server), { apiKey: KEY }, (line) => lines.push(line));
  assert.deepEqual(failedNames(summary), []);
  assert.doesNotMatch(lines.join('\n'), /^Warning/m);
});

test('an endpoint that requires what the contract leaves out fails: a messageId, a userId not null, no settings header', async (t) => {
  // Any field may be missing or null unless the contract says otherwise (Segment sends `userId: null` for
  // an anonymous visitor), and an X-Segment-Settings of {} means what no header means. Endpoints that
  // refused each passed every case.
  const strays: Array<[string, NonNullable<Strays['refuses']>]> = [
    ['lenient: no messageId', (event) => typeof event.messageId !== 'string'],
    ['lenient: userId null, anonymousId set', (event) => 'userId' in event && event.userId === null],
    ['settings: X-Segment-Settings of {}, as when absent', (_, req) => 'x-segment-settings' in req.headers],
  ];
  for (const [name, refuses] of strays) {
    const { server } = endpoint(() => false, 'json', { refuses });
    const summary = await run(await listen(t, server), { apiKey: KEY }, () => {});
    assert.deepEqual(failedNames(summary), [name]);
  }
});

test('an endpoint that closes the connection after every answer passes, with a warning: Segment keeps it alive', async (t) => {
  const { server, received } = endpoint(() => false, 'json', { closes: true });
  const lines: string[] = [];
  const summary = await run(await listen(t, server), { apiKey: KEY }, (line) => lines.push(line));
  assert.deepEqual(failedNames(summary), []);
  assert.equal(received(), CASES.length, 'each case sent once');
  const accepted = CASES.filter((c, i) => c.expect === 'accept' && i < CASES.length - 1).length;
  assert.match(
    lines.join('\n'),
    new RegExp(`^Warning: the connection was closed after ${accepted} of ${accepted} accepted events`, 'm'),
  );
});

test('an endpoint that keeps its connection alive 1.5 s (Keep-Alive: timeout=1) or closes it after refusals: no warning', async (t) => {
  // Node's agent drops a socket whose server hints a timeout of 1 s: the tester closed the connection
  // itself, and said the endpoint did. The GET then went on a connection the endpoint had closed after
  // its last refusal, as the contract allows, and was said not to be answered.
  const hinting = endpoint(() => false);
  hinting.server.keepAliveTimeout = 1_500;
  const afterRefusals = endpoint(() => false);
  afterRefusals.server.on('request', (req: IncomingMessage, res: ServerResponse) =>
    res.on('finish', () => res.statusCode >= 300 && req.method === 'POST' && req.socket.end()),
  );
  for (const { server } of [hinting, afterRefusals]) {
    const lines: string[] = [];
    const summary = await run(await listen(t, server), { apiKey: KEY }, (line) => lines.push(line));
    assert.deepEqual(failedNames(summary), []);
    assert.doesNotMatch(lines.join('\n'), /^Warning/m);
  }
});

test('over http://, an endpoint that resets or closes every method but POST is still sent the suite', async (t) => {
  // The check before the run asked with a HEAD: such an endpoint was said not to speak HTTP ("is it
  // https:// ?", or no answer within 5 s), exit 1, and no event was sent, though it answers every POST.
  const answers: Array<(res: ServerResponse) => void> = [
    (res) => res.socket?.resetAndDestroy(),
    (res) => res.socket?.destroy(),
  ];
  for (const otherMethods of answers) {
    const { server, received } = endpoint(() => false, 'json', { otherMethods });
    const url = await listen(t, server);
    const out = { text: '', write: (s: string) => (out.text += s) };
    const code = await testMain([url, '--api-key', KEY], { stdout: out, stderr: out });
    assert.equal(code, 0, out.text);
    assert.match(out.text, new RegExp(`^${CASES.length} passed, 0 failed$`, 'm'));
    assert.match(out.text, /^Warning: a GET was not answered/m);
    assert.equal(received(), CASES.length + 1, 'the suite, and the check: a POST without credentials');
  }
});

test('over http://, an endpoint that never answers a method but POST passes the check before the run', async (t) => {
  // A handler with no branch for other methods leaves a HEAD waiting: the check said "no answer within
  // 5 s", exit 1, though every POST would have been answered.
  let posts = 0;
  const { server } = endpoint(() => false, 'json', { otherMethods: () => {} });
  server.on('request', (req: IncomingMessage) => req.method === 'POST' && posts++);
  const url = await listen(t, server);
  assert.equal(await probe(new URL(url), false, 1_000), undefined);
  assert.equal(posts, 1, 'asked again with a POST');
});

test('a method other than POST answered otherwise than 405 with Allow: POST passes, with a warning', async (t) => {
  const answers: Array<[string, (res: ServerResponse) => void, RegExp]> = [
    [
      'a 404',
      (res) => reply(res, 404, 'Not Found'),
      /^Warning: a GET was answered 404, not 405 with Allow: POST/m,
    ],
    [
      'a 405 without Allow',
      (res) => reply(res, 405, 'No'),
      /^Warning: a GET was answered 405 without Allow: POST/m,
    ],
    // Method names are case-sensitive (RFC 9110).
    ['Allow: post', (res) => allowing(res, 'post'), /^Warning: a GET was answered 405 without Allow: POST/m],
    [
      'Allow: GET, POST',
      (res) => allowing(res, 'GET, POST'),
      /^Warning: a GET was answered 405, yet its Allow lists GET/m,
    ],
  ];
  for (const [what, otherMethods, warning] of answers) {
    const { server } = endpoint(() => false, 'json', { otherMethods });
    const lines: string[] = [];
    const summary = await run(await listen(t, server), { apiKey: KEY }, (line) => lines.push(line));
    assert.deepEqual(failedNames(summary), [], what);
    assert.match(lines.join('\n'), warning, what);
  }
});

test('a 501 to a variant of a type the endpoint takes fails: it is not "a type this endpoint does not take"', async (t) => {
  // Any 501 to a good event passed as "does not take that type": an endpoint that reads `type` in one
  // casing, refuses a null context, or answers 501 to a delete without userId passed every case, and its
  // summary listed as not taken the very types it took.
  const { server } = endpoint(
    (e) =>
      e.type === 'Track' ||
      (e.type === 'track' && e.context === null) ||
      (e.type === 'delete' && e.userId === undefined),
  );
  const lines: string[] = [];
  const summary = await run(await listen(t, server), { apiKey: KEY }, (line) => lines.push(line));
  assert.deepEqual(failedNames(summary), [
    'casing: "type": "Track"',
    'lenient: null context and integrations',
    'bad: delete without userId',
  ]);
  const text = lines.join('\n');
  assert.doesNotMatch(text, /^Not taken by this endpoint/m);
  assert.match(text, /^ {3}FAIL \(expected 200 or 202; a 501 says that track events are not taken, yet/m);
});

test('an endpoint that takes only identify and group passes: the auth cases are track events, and 501 is owed', async (t) => {
  const partial = createServer({
    host: '127.0.0.1',
    port: 0,
    http: true,
    apiKeys: [KEY],
    handlers: { identify: ok, group: ok },
    log: silentLogger,
  });
  const url = await partial.listen();
  t.after(() => partial.close());
  const lines: string[] = [];
  const summary = await run(url, { apiKey: KEY }, (line) => lines.push(line));
  assert.deepEqual(failedNames(summary), []);
  assert.match(lines.join('\n'), /^Not taken by this endpoint \(501\): track, page, screen, alias, delete$/m);
  // Allowed for the others; a user deletion is a request the partner must honour (GDPR/CCPA): said so.
  assert.match(lines.join('\n'), /^Warning: delete events .*must honour/m);
});

test('an endpoint that takes a type nowhere but in one variant: its 501s to that type fail, said before the summary', async (t) => {
  // track answered 501, as if not taken, but "Track" accepted: the 501 was no "not taken".
  const { server } = endpoint((e) => e.type === 'track');
  const lines: string[] = [];
  const summary = await run(await listen(t, server), { apiKey: KEY }, (line) => lines.push(line));
  const failed = failedNames(summary);
  assert.ok(failed.includes('track'), failed.join('; '));
  assert.ok(!failed.includes('casing: "type": "Track"'), failed.join('; '));
  assert.match(lines.join('\n'), /^track events were answered 501 \(not taken\) and also accepted/m);
});

test('an answer cut after its headers on a kept-alive connection fails, and its event is not sent again', async (t) => {
  // Each connection's first answer whole, every later one cut after its headers and part of its body. The
  // cut answer was taken for a connection the server had closed before the request, and the event sent
  // again: every case passed, 61 requests for 31.
  const perSocket = new WeakMap<object, number>();
  const { server, received } = bodies((req, res) => {
    const n = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, n);
    if (n === 1) return reply(res, 200);
    res.writeHead(200, { 'content-length': '100' });
    res.write('{"mess', () => req.socket.destroy());
  });
  const summary = await run(await listen(t, server), { apiKey: KEY }, () => {});
  assert.equal(received(), CASES.length, 'each case sent once');
  const cut = summary.results.filter((r) => r.error !== undefined);
  assert.ok(cut.length >= CASES.length / 2 - 1, `${cut.length} cut`);
  for (const r of cut) assert.match(r.error ?? '', /cut off after its status \(200\)/);
});

test('a timeout in the middle of an answer fails that case alone: nothing of it is sent again', async (t) => {
  // The cut the timeout made started a second copy of the case, which took the connection: the next
  // case was reported unanswered though it was never sent.
  let pages = 0;
  const { server, received } = bodies((req, res, body) => {
    if (!body.startsWith('{"type":"page"')) return reply(res, 200);
    pages++;
    res.writeHead(200);
    const trickle = setInterval(() => res.write(' '), 50); // a body that never ends
    req.socket.on('close', () => clearInterval(trickle));
  }, true);
  const url = await listen(t, server);
  const summary = await run(url, { apiKey: KEY, timeoutMs: 300, insecure: true }, () => {});
  assert.equal(pages, 1, 'the page case sent once');
  assert.equal(received(), CASES.length, 'each case sent');
  const page = summary.results.find((r) => r.name === 'page');
  assert.match(page?.error ?? '', /^timed out after 0.3 s \(its status, 200, came/);
  // Every other case answered (this server answers 200 to all, so the bad ones fail on their status).
  assert.deepEqual(
    summary.results.filter((r) => r.status === undefined).map((r) => r.name),
    ['page'],
  );
});

test('secrets on the command line are not echoed: credentials in a URL, the values of its query, --settings', async (t) => {
  // An invalid URL was printed whole, credentials included; a query's token was printed on every line of
  // a run (32 times) and in load's report; --settings that is no JSON object was echoed in full.
  const sink = () => {
    const out = { text: '', write: (s: string) => (out.text += s) };
    const err = { text: '', write: (s: string) => (err.text += s) };
    return { io: { stdout: out, stderr: err }, said: () => out.text + err.text };
  };
  const bad = [
    ['https://user:s3cret@127.0.0.1:99999/', '--api-key', KEY],
    [' https://user:s3cret@127.0.0.1:8443/', '--api-key', KEY],
    ['https://user:x/s3cret@127.0.0.1:8443/', '--api-key', KEY],
    ['https://user:x#s3cret@127.0.0.1/', '--api-key', KEY],
    ['ftp://user:s3cret@127.0.0.1/', '--api-key', KEY],
    ['https://127.0.0.1:99999/?token=s3cret', '--api-key', KEY],
    ['http://127.0.0.1/', '--api-key', KEY, '--settings', '{"token":"s3cret"'],
    ['http://127.0.0.1/', '--api-key', KEY, '--settings', '["s3cret"]'],
  ];
  for (const args of bad) {
    for (const main of [testMain, loadMain]) {
      const { io, said } = sink();
      assert.equal(await main(args, io), 1, args.join(' '));
      assert.ok(!said().includes('s3cret'), `${args.join(' ')}: ${said()}`);
      assert.match(said(), /^segment-endpoint (test|load): /);
    }
  }
  const { server } = endpoint(() => false);
  const url = `${await listen(t, server)}ingest?token=s3cret&region=eu`;
  for (const [main, extra] of [
    [testMain, []],
    [loadMain, ['--duration', '1', '--rate', '20']],
  ] as const) {
    const { io, said } = sink();
    await main([url, '--api-key', KEY, ...extra], io);
    assert.ok(!said().includes('s3cret'), said());
    assert.match(said(), /\/ingest\?token=…&region=…/);
  }
});

test('a refusal without a JSON {"message"} fails: Segment shows the customer that message', async (t) => {
  // The contract: error bodies are JSON {"message"} with Content-Type application/json. An endpoint that
  // answered its refusals with no body, or with an HTML page, passed every case.
  for (const refusals of ['empty', 'html', 'json-seq'] as const) {
    const { server } = endpoint(() => false, refusals);
    const lines: string[] = [];
    const summary = await run(await listen(t, server), { apiKey: KEY }, (line) => lines.push(line));
    const refused = CASES.filter((c) => c.expect !== 'accept').map((c) => c.name);
    assert.deepEqual(failedNames(summary), refused, refusals);
    assert.match(
      lines.join('\n'),
      /^ {3}FAIL \(expected 401, with a JSON \{"message"\} saying what is wrong/m,
    );
    // What was answered instead is shown, for its author to find.
    if (refusals === 'html')
      assert.match(lines.join('\n'), /^ {3}401, not a JSON \{"message"\}: <h1>Invalid API key<\/h1>$/m);
    if (refusals === 'empty') assert.match(lines.join('\n'), /^ {3}401$/m);
  }
});

test('a refusal whose message shows a stack trace fails: Segment shows the customer that message', async (t) => {
  const { server } = endpoint(() => false, 'stack');
  const lines: string[] = [];
  const summary = await run(await listen(t, server), { apiKey: KEY }, (line) => lines.push(line));
  const refused = CASES.filter((c) => c.expect !== 'accept').map((c) => c.name);
  assert.deepEqual(failedNames(summary), refused);
  assert.match(
    lines.join('\n'),
    /FAIL \(expected 400, with a message that names no stack trace or source file/,
  );
});

test('a key compared only as far as the real one goes fails: a key with a character more is let in', async (t) => {
  // A probe's endpoint compared each character of the real key with the one sent and stopped there: any
  // key that begins with the real one was let in, and every case passed.
  const { server } = bodies((req, res) => {
    const sent = (req.headers.authorization ?? '').replace(/^basic /i, '');
    const user = Buffer.from(sent, 'base64').toString().split(':')[0] ?? '';
    if (user.length < KEY.length || [...KEY].some((c, i) => user[i] !== c)) return reply(res, 401, 'Invalid');
    reply(res, 200);
  });
  const summary = await run(await listen(t, server), { apiKey: KEY }, () => {});
  assert.ok(failedNames(summary).includes('bad: the API key with a character more'));
  assert.ok(!failedNames(summary).includes('bad: the API key less its last character'));
});

test('a refusal as application/problem+json (RFC 9457) with its message passes: it is JSON', async (t) => {
  const { server } = endpoint(() => false, 'problem+json');
  const summary = await run(await listen(t, server), { apiKey: KEY }, () => {});
  assert.deepEqual(failedNames(summary), []);
});

test('a 501 for a type not taken needs its JSON {"message"} too, and the verdict says so', async (t) => {
  const server = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(req.headers['content-length'] === '0' ? 200 : 501).end());
  });
  const lines: string[] = [];
  await run(await listen(t, server), { apiKey: KEY }, (line) => lines.push(line));
  assert.match(
    lines.join('\n'),
    /^ {3}FAIL \(a 501, for a type not taken, with a JSON \{"message"\} saying so: Segment shows it to the customer\)$/m,
  );
});

test('an answer that is not HTTP is said to be so, not in the parser words of node', async (t) => {
  const server = createNetServer((socket) => {
    socket.once('data', () => socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\n'));
  });
  t.after(() => server.close());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const summary = await run(url, { apiKey: KEY, timeoutMs: 2_000 }, () => {});
  assert.match(summary.results[0]?.error ?? '', /^the answer is not HTTP \(/);
});
