import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { type TestContext, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Example, startExample } from '../examples/embed.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const KEY = 'dev-key';

const basic = (user: string) => `Basic ${Buffer.from(`${user}:`).toString('base64')}`;

async function start(t: TestContext): Promise<Example> {
  const example = await startExample(0);
  t.after(() => example.close());
  return example;
}

function post(url: string, event: object, key = KEY): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { authorization: basic(key), 'content-type': 'application/json' },
    body: JSON.stringify(event),
  });
}

test('an identify with a valid key is answered 200 and recorded, whatever the trait casing', async (t) => {
  const example = await start(t);
  const res = await post(example.url, {
    type: 'Identify',
    userId: 'u1',
    messageId: 'm1',
    traits: { EMAIL: 'ada@example.com', plan: 'pro' },
  });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), '');
  assert.equal(example.received.length, 1);
  assert.equal(example.received[0]?.event.messageId, 'm1');
  assert.deepEqual(example.contacts.get('acme/u1'), {
    account: 'acme',
    userId: 'u1',
    email: 'ada@example.com',
    traits: { EMAIL: 'ada@example.com', plan: 'pro' },
  });
});

test('an identify whose userId is empty is filed under the anonymousId that says who', async (t) => {
  // The schema takes an empty userId beside an anonymousId that says who: `userId ?? anonymousId` filed
  // the contact under "acme/".
  const example = await start(t);
  const traits = { email: 'ada@example.com' };
  const res = await post(example.url, { type: 'identify', userId: '', anonymousId: 'a1', traits });
  assert.equal(res.status, 200);
  assert.deepEqual([...example.contacts.keys()], ['acme/a1']);
});

test('an identify without an email is a 400 whose JSON message says so', async (t) => {
  const example = await start(t);
  const res = await post(example.url, { type: 'identify', userId: 'u1', traits: { name: 'Ada' } });
  assert.equal(res.status, 400);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(await res.json(), { message: 'Missing email address', code: 'SEG_INVALID_EVENT' });
  assert.equal(example.received.length, 0);
});

test('a track is answered 202 and queued', async (t) => {
  const example = await start(t);
  const res = await post(example.url, { type: 'track', event: 'Signed Up', anonymousId: 'a1' });
  assert.equal(res.status, 202);
  assert.equal(example.queue.length, 1);
  assert.equal(example.queue[0]?.event.event, 'Signed Up');
});

test('a wrong key is a 401 and reaches no handler', async (t) => {
  const example = await start(t);
  const res = await post(example.url, { type: 'track', event: 'Signed Up', userId: 'u1' }, 'wrong-key');
  assert.equal(res.status, 401);
  assert.equal((await res.json()).code, 'SEG_AUTH_UNKNOWN');
  assert.match(res.headers.get('www-authenticate') ?? '', /^Basic /);
  assert.equal(example.received.length, 0);
});

test('a delete removes what the app holds about the user', async (t) => {
  const example = await start(t);
  await post(example.url, { type: 'identify', userId: 'u1', traits: { email: 'ada@example.com' } });
  await post(example.url, { type: 'track', event: 'Signed Up', userId: 'u1' });
  await post(example.url, { type: 'track', event: 'Signed Up', userId: 'u2' });
  const res = await post(example.url, { type: 'delete', userId: 'u1', context: [], integrations: null });
  assert.equal(res.status, 200);
  assert.equal(example.contacts.has('acme/u1'), false);
  assert.deepEqual(
    example.queue.map((item) => item.event.userId),
    ['u2'],
  );
  assert.deepEqual(
    example.received.map((item) => item.event.userId),
    ['u2'],
  );
  assert.deepEqual(example.deletions, ['acme/u1']);
});

test("the partner's own routes are served by the same server", async (t) => {
  const example = await start(t);
  await post(example.url, { type: 'track', event: 'Signed Up', userId: 'u1' });
  const status = await fetch(example.statusUrl);
  assert.equal(status.status, 200);
  assert.deepEqual(await status.json(), { ok: true, contacts: 0, queued: 1, inFlight: 0 });
  const health = await fetch(`${example.url}/health`);
  assert.equal(health.status, 200);
  const other = await fetch(new URL('/nowhere', example.url));
  assert.equal(other.status, 404);
});

test('run directly, the example prints its URL, takes an event and stops on SIGTERM', async (t) => {
  const child = spawn(
    process.execPath,
    ['--conditions=segment-endpoint-source', '--import', 'tsx', 'examples/embed.ts'],
    {
      cwd: ROOT,
      env: { ...process.env, PORT: '0', SEGMENT_API_KEY: KEY },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const exited = once(child, 'exit');
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });

  const url = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(
      () => reject(new Error(`no URL printed within 15 s; stderr: ${stderr}`)),
      15_000,
    );
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(stdout);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before printing its URL; stderr: ${stderr}`));
    });
  });

  const res = await post(url, { type: 'track', event: 'Signed Up', userId: 'u1' });
  assert.equal(res.status, 202);

  child.kill('SIGTERM');
  const [code, signal] = await exited;
  assert.equal(signal, null);
  assert.equal(code, 0);
});

test("the README's example passes the README's check of an endpoint, `segment-endpoint test`", async (t) => {
  // Its identify handler refuses an identify without an email, as the README teaches, and the suite's
  // lenient identify carried no traits: a partner who copied the example and ran the check got a FAIL.
  const example = await start(t);
  const { run } = await import('../src/tester/run.ts');
  const summary = await run(example.url, { apiKey: KEY }, () => {});
  assert.deepEqual(
    summary.results.filter((result) => !result.pass).map((result) => `${result.name}: ${result.status}`),
    [],
  );
});
