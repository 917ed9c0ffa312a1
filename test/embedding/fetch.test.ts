// The contract cases through the web-standard handler (createFetchHandler): Request in, Response out,
// answered as the standalone server answers them, byte for byte.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { test } from 'node:test';
import { Hono } from 'hono';
import { createFetchHandler, silentLogger } from '../../src/index.ts';
import {
  type Answer,
  CASE_KEY,
  type ContractCase,
  caseOptions,
  fetchBody,
  mismatches,
  runCases,
  standaloneAnswers,
} from './cases.ts';

const through =
  (handle: (request: Request) => Promise<Response>, base = '') =>
  async (c: ContractCase): Promise<Answer> => {
    const response = await handle(
      new Request(`https://events.example${base}${c.path}`, {
        method: c.method,
        headers: c.headers,
        body: fetchBody(c.body),
      }),
    );
    return { status: response.status, body: await response.text() };
  };

/** A POST of the case key's whose body is the stream `body`, to `handle`. */
const postStream = (
  handle: (request: Request) => Promise<Response>,
  body: ReadableStream<Uint8Array>,
  signal?: AbortSignal,
) =>
  handle(
    new Request('https://e.example/', {
      method: 'POST',
      headers: { authorization: `Basic ${btoa(`${CASE_KEY}:`)}`, 'content-type': 'application/json' },
      body,
      duplex: 'half',
      signal,
    } as RequestInit),
  );

test('the fetch handler answers every contract case as the standalone server does', async () => {
  const seen: string[] = [];
  const fetchAnswers = await runCases(
    through(
      createFetchHandler({ ...caseOptions(seen), log: silentLogger }, { basePath: '/segment' }),
      '/segment',
    ),
  );
  assert.deepEqual(mismatches(fetchAnswers), []);
  assert.equal(seen.filter((id) => id === 'c-1').length, 1, 'the duplicate was not handled again');

  assert.deepEqual([...fetchAnswers], [...(await standaloneAnswers())]);
});

test('Retry-After and WWW-Authenticate reach the Response; the connection headers do not', async () => {
  const handle = createFetchHandler({ ...caseOptions(), log: silentLogger });
  const refused = await handle(new Request('https://e.example/', { method: 'POST', body: '{}' }));
  assert.equal(refused.status, 401);
  assert.match(refused.headers.get('www-authenticate') ?? '', /^Basic realm=/);
  // Keys replaced while serving: the old one refused from the next request on.
  const keyed = (key: string) =>
    handle(
      new Request('https://e.example/', {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${key}:`).toString('base64')}`,
          'content-type': 'application/json',
        },
        body: '{"type":"track","event":"e","userId":"u"}',
      }),
    );
  handle.setApiKeys(['swapped-key']);
  assert.equal((await keyed('swapped-key')).status, 200);
  assert.equal((await keyed('embed-key')).status, 401);
  await handle.loadApiKeys(['loaded-key']);
  assert.equal((await keyed('loaded-key')).status, 200);
  handle.setSignatureSecret('embedded-secret'); // from the next request on, every one must be signed
  assert.equal((await keyed('loaded-key')).status, 401);
  const body = '{"type":"track","event":"e","userId":"u"}';
  const signed = await handle(
    new Request('https://e.example/', {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from('loaded-key:').toString('base64')}`,
        'content-type': 'application/json',
        'x-signature': createHmac('sha1', 'embedded-secret').update(body).digest('hex'),
      },
      body,
    }),
  );
  assert.equal(signed.status, 200);
  handle.setApiKeys(['embed-key']);
  handle.drain();
  assert.equal((await handle(new Request('https://e.example/health'))).status, 503);
  const headers = { authorization: `Basic ${Buffer.from('embed-key:').toString('base64')}` };
  const draining = await handle(new Request('https://e.example/', { method: 'POST', headers, body: '{}' }));
  assert.equal(draining.status, 503);
  assert.equal(draining.headers.get('retry-after'), '1');
  assert.equal(draining.headers.get('connection'), null, "the connection is the host's");
});

test('in Hono (app.request), mounted at /segment, the same answers', async () => {
  const handle = createFetchHandler({ ...caseOptions(), log: silentLogger }, { basePath: '/segment' });
  const app = new Hono();
  app.all('/segment', (c) => handle(c.req.raw));
  app.all('/segment/*', (c) => handle(c.req.raw));
  app.get('/', (c) => c.text('the partner app'));
  const answers = await runCases(async (c) => {
    const response = await app.request(`/segment${c.path === '/' ? '' : c.path}`, {
      method: c.method,
      headers: c.headers,
      body: fetchBody(c.body),
    });
    return { status: response.status, body: await response.text() };
  });
  assert.deepEqual(mismatches(answers), []);
  assert.equal(await (await app.request('/')).text(), 'the partner app', 'the rest of the app is untouched');
});

test('a body that fails half way (its sender gone) ends in a rejection, not a crash', async () => {
  const handle = createFetchHandler({ ...caseOptions(), log: silentLogger });
  let pull = 0;
  const body = new ReadableStream({
    pull(controller) {
      if (pull++ === 0) controller.enqueue(new TextEncoder().encode('{"type":"track",'));
      else controller.error(new Error('the sender went away'));
    },
  });
  const headers = { authorization: `Basic ${Buffer.from('embed-key:').toString('base64')}` };
  const request = new Request('https://e.example/', {
    method: 'POST',
    headers,
    body,
    duplex: 'half',
  } as RequestInit);
  await assert.rejects(handle(request), /the sender went away/);
  assert.equal(handle.inFlight, 0);
  // A stream errored with no reason, or a falsy one: the promise was left pending for good.
  for (const reason of [undefined, null, 0, false, '']) {
    const failing = new ReadableStream({
      pull(controller) {
        controller.error(reason);
      },
    });
    const init = { method: 'POST', headers, body: failing, duplex: 'half' } as RequestInit;
    await assert.rejects(handle(new Request('https://e.example/', init)), /the Request body failed/);
  }
  assert.equal(handle.inFlight, 0);
});

test('a body of empty chunks without end is a 408 at its deadline, other work going on meanwhile', async () => {
  // Read in a loop of promises that never gave the timers a turn: the process spun at 100 % for good (so
  // that, without the fix, this test hangs the run: no timeout can fire either).
  const handle = createFetchHandler({ ...caseOptions(), log: silentLogger, bodyTimeoutMs: 300 });
  let ticks = 0;
  const clock = setInterval(() => ticks++, 10);
  try {
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new Uint8Array(0));
      },
    });
    const res = await postStream(handle, body);
    assert.equal(res.status, 408);
    assert.equal(((await res.json()) as { code: string }).code, 'SEG_BODY_TIMEOUT');
    assert.ok(ticks > 5, `the host's own timer ran ${ticks} times meanwhile`);
  } finally {
    clearInterval(clock);
  }
  assert.equal(handle.inFlight, 0);
});

test('a request its sender aborts mid-body is not taken: its handler never runs on what came', async () => {
  // The host aborts the Request's signal when its sender goes away. The body stream, stopped there, must
  // not read as a body that ended: Readable.fromWeb ends (rather than fails) when destroyed without an
  // error, and the part that had come, here a whole event under a longer Content-Length, was handled,
  // where a Node request cut short is SEG_BODY_ABORTED and never reaches a handler.
  const seen: string[] = [];
  const handle = createFetchHandler({ ...caseOptions(seen), log: silentLogger });
  const event = new TextEncoder().encode('{"type":"track","event":"e","userId":"u","messageId":"cut-1"}');
  for (const length of [String(event.length + 100), undefined]) {
    const sender = new AbortController();
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(event); // and no more: the sender is gone before the end
      },
    });
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      authorization: `Basic ${btoa(`${CASE_KEY}:`)}`,
    };
    if (length !== undefined) headers['content-length'] = length;
    const request = new Request('https://e.example/', {
      method: 'POST',
      headers,
      body,
      duplex: 'half',
      signal: sender.signal,
    } as RequestInit);
    const answer = handle(request);
    setTimeout(() => sender.abort(new Error('the sender went away')), 50);
    await assert.rejects(answer, /the sender went away/);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(seen, [], `Content-Length ${length ?? 'none'}: the handler ran`);
    assert.equal(handle.inFlight, 0);
  }
});

test('basePath is a path segment, and a request already aborted is rejected at once', async () => {
  const handle = createFetchHandler({ ...caseOptions(), log: silentLogger }, { basePath: '/segment' });
  assert.equal((await handle(new Request('https://e.example/segment/health'))).status, 200);
  const beside = await handle(new Request('https://e.example/segmentation/health'));
  assert.equal(beside.status, 404, '/segmentation is not below /segment');
  const aborted = AbortSignal.abort(new Error('the host gave up'));
  const started = Date.now();
  await assert.rejects(
    handle(new Request('https://e.example/segment', { method: 'POST', body: '{}', signal: aborted })),
    /the host gave up/,
  );
  assert.ok(Date.now() - started < 1_000);
});

test('basePath is matched with its unreserved characters percent-encoded read as themselves, as routes are', async () => {
  // Hono (and the Node handlers) read /%73egment as /segment: the fetch handler answered its 404, final.
  const seen: string[] = [];
  const handle = createFetchHandler({ ...caseOptions(seen), log: silentLogger }, { basePath: '/segment' });
  const headers = { 'content-type': 'application/json', authorization: `Basic ${btoa(`${CASE_KEY}:`)}` };
  for (const [n, path] of ['/%73egment', '/%73egment/v1/%74rack', '/segm%65nt/'].entries()) {
    const messageId = `spelled-${n}`;
    const body = JSON.stringify({ type: 'track', event: 'Signed Up', userId: 'u1', messageId });
    const res = await handle(new Request(`https://e.example${path}`, { method: 'POST', headers, body }));
    assert.equal(res.status, 200, path);
  }
  assert.equal(seen.length, 3);
  const reserved = await handle(new Request('https://e.example/segment%2Fv1/track', { method: 'POST' }));
  assert.equal(reserved.status, 404, 'an encoded "/" is not a segment break');
  // Options spelled so themselves are matched as sent first, as the Node handlers match them.
  const spelled = createFetchHandler(
    { ...caseOptions(seen), log: silentLogger, path: '/%73eg', healthPath: '/he%61lth' },
    { basePath: '/%73egment' },
  );
  const body = JSON.stringify({ type: 'track', event: 'Signed Up', userId: 'u1', messageId: 'spelled-own' });
  const own = await spelled(
    new Request('https://e.example/%73egment/%73eg', { method: 'POST', headers, body }),
  );
  assert.equal(own.status, 200);
  assert.equal((await spelled(new Request('https://e.example/%73egment/he%61lth'))).status, 200);
  // Health and metrics are matched as sent, the mount included: a proxy rule that hides /segment/metrics
  // by its path does not see /%73egment/metrics.
  const watched = createFetchHandler(
    { ...caseOptions(), log: silentLogger, metricsPath: '/metrics' },
    { basePath: '/segment' },
  );
  for (const path of [
    '/%73egment/metrics',
    '/%73egment/%6detrics',
    '/%73egment/health',
    '/segment/%6detrics',
  ]) {
    assert.equal((await watched(new Request(`https://e.example${path}`))).status, 404, path);
  }
  assert.equal((await watched(new Request('https://e.example/segment/metrics'))).status, 200);
  assert.equal(
    (await spelled(new Request('https://e.example/segment/he%61lth'))).status,
    404,
    'the other way round',
  );
});

test('a path or basePath with dot segments is refused when the handler is made: a URL never holds one', () => {
  for (const path of ['/seg/./in', '/seg/../seg', '/seg/%2e%2E/x', '/.', '/events/..']) {
    assert.throws(
      () => createFetchHandler(caseOptions(), { basePath: path }),
      /basePath must not hold/,
      path,
    );
    assert.throws(() => createFetchHandler({ ...caseOptions(), path }), /options\.path must not hold/, path);
  }
  // Dots inside a segment are a name like any other.
  assert.doesNotThrow(() => createFetchHandler(caseOptions(), { basePath: '/v1.2/...events' }));
});

test('a Request whose body the host already read is a JSON 500, logged: there is no event left to take', async () => {
  const logged: object[] = [];
  const log = { ...silentLogger, error: (obj: object) => logged.push(obj) };
  const handle = createFetchHandler({ ...caseOptions(), log });
  const authed = { 'content-type': 'application/json', authorization: `Basic ${btoa(`${CASE_KEY}:`)}` };
  const read = new Request('https://e.example/', {
    method: 'POST',
    headers: authed,
    body: '{"type":"track"}',
  });
  await read.text(); // a middleware before the handler read it
  const locked = new Request('https://e.example/', {
    method: 'POST',
    headers: authed,
    body: '{"type":"track"}',
  });
  locked.body?.getReader();
  for (const request of [read, locked]) {
    const res = await handle(request);
    assert.equal(res.status, 500);
    assert.equal(((await res.json()) as { code: string }).code, 'SEG_INTERNAL');
  }
  assert.equal(logged.length, 2);
});

test('outside its basePath nothing is served: a catch-all host (Bun.serve, a worker) passes every request', async () => {
  const seen: string[] = [];
  const handle = createFetchHandler({ ...caseOptions(seen), log: silentLogger }, { basePath: '/segment' });
  const authed = { 'content-type': 'application/json', authorization: `Basic ${btoa(`${CASE_KEY}:`)}` };
  const body = JSON.stringify({ type: 'track', event: 'Signed Up', userId: 'u1', messageId: 'outside-1' });
  for (const [method, path] of [
    ['POST', '/'],
    ['POST', '/v1/track'],
    ['GET', '/health'],
  ] as const) {
    const res = await handle(
      new Request(`https://e.example${path}`, {
        method,
        headers: authed,
        ...(method === 'POST' && { body }),
      }),
    );
    assert.equal(res.status, 404, `${method} ${path}`);
    const answer = (await res.json()) as { code: string; message: string };
    assert.equal(answer.code, 'SEG_NOT_FOUND');
    assert.match(answer.message, /send events to \/segment$/);
  }
  assert.deepEqual(seen, []);
});

test("a 404 names the event path where the host mounted it, as the standalone server's does", async () => {
  const handle = createFetchHandler({ ...caseOptions(), log: silentLogger }, { basePath: '/segment' });
  const res = await handle(new Request('https://e.example/segment/elsewhere'));
  assert.equal(res.status, 404);
  assert.match(((await res.json()) as { message: string }).message, /send events to \/segment$/);
});

test("a success is answered within its host's turn: it does not wait for the host's work queued after", async () => {
  // Successes on a kernel socket are written together at the end of the loop's turn (AnswerBatch), so
  // that a client is woken once for many. A Response gains nothing from that: it would wait behind
  // whatever the host queued for the turn's end (setImmediate), other requests' work included.
  const handle = createFetchHandler({ ...caseOptions(), log: silentLogger });
  const order: string[] = [];
  const answered = handle(
    new Request('https://events.example/', {
      method: 'POST',
      headers: { authorization: `Basic ${btoa(`${CASE_KEY}:`)}`, 'content-type': 'application/json' },
      body: '{"type":"track","event":"e","userId":"u","messageId":"turn-1"}',
    }),
  ).then((res) => order.push(`answer ${res.status}`));
  setImmediate(() => order.push("the host's work"));
  await answered;
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(order, ['answer 200', "the host's work"]);
});

/** A body stream that sends `chunk` each time it is asked, for ever, counting the asks. */
function endless(chunk: string) {
  const seen = { pulls: 0 };
  const bytes = new TextEncoder().encode(chunk);
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      seen.pulls++;
      controller.enqueue(bytes);
    },
  });
  return { body, seen };
}

test('an endless body without a length is cut at the limit: a 413, and no more of it read', async () => {
  // Not cancelled: the stream is the host's connection, and cancelling it could reset that connection
  // before the host writes the 413. What is left is the host's to drain or close.
  const handle = createFetchHandler({ ...caseOptions(), log: silentLogger });
  const { body, seen } = endless('x'.repeat(1024));
  const res = await postStream(handle, body);
  assert.equal(res.status, 413);
  assert.equal(((await res.json()) as { code: string }).code, 'SEG_BODY_TOO_LARGE');
  // Node's stream reads ahead up to its high-water mark (16 KiB) once paused, then stops for good: an
  // endless body still read would be thousands of chunks by now. (Not "no read in the last 100 ms": a
  // loaded machine can spread the read-ahead past a fixed wait.)
  await new Promise((resolve) => setTimeout(resolve, 150));
  assert.ok(seen.pulls <= 4 + 16 + 2, `${seen.pulls} chunks of 1 KiB read for a 4 KiB limit`);
  assert.equal(handle.inFlight, 0);
});

test('a request its host aborts mid-body is rejected with the reason, and its body stream cancelled', async () => {
  const handle = createFetchHandler({ ...caseOptions(), log: silentLogger });
  let sent = 0;
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      // the start of an event, then nothing more: the sender stalls
      if (sent++ === 0) controller.enqueue(new TextEncoder().encode('{"type":"track",'));
      else return new Promise(() => {});
    },
    cancel() {
      cancelled = true;
    },
  });
  const abort = new AbortController();
  const answered = postStream(handle, body, abort.signal);
  setTimeout(() => abort.abort(new Error('the client hung up')), 20);
  await assert.rejects(answered, /the client hung up/);
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(cancelled, 'the body stream was cancelled');
  assert.equal(handle.inFlight, 0);
});
