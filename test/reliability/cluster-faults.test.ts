// --workers when a worker dies at the worst moment: the primary writes to its channel after it died but
// before the primary has read the channel's end (here: a /metrics gather asking it for its counts).
// The primary must log it and carry on; before, the write's EPIPE was an uncaught exception that ended
// the primary, and node:cluster then ended every other worker without a drain.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { trackEvent } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { waitFor, waitUntil } from '../helpers-wait.ts';
import { freshStatuses, GUARD_MS, listeningPids, setUp } from './cluster-harness.ts';
import { cleanup, type Endpoint, send, startEndpoint, stopCleanly } from './harness.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A keep-alive connection, and the pid of the worker at its other end (from the kernel's socket table). */
async function connectionToAWorker(
  port: number,
): Promise<{ socket: Socket; worker: number; answers: () => string }> {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  socket.on('error', () => {});
  await new Promise((resolve) => socket.on('connect', resolve));
  socket.write('GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n');
  await waitUntil(
    () => text.includes('status'),
    () => `health answered: ${text}`,
  );
  const table = execFileSync('ss', ['-tnpH', 'state', 'established', `( sport = :${port} )`]).toString();
  const line = table
    .split('\n')
    .find((l) => l.includes(`127.0.0.1:${socket.localPort} `) || l.endsWith(`:${socket.localPort}`));
  const worker = Number(/pid=(\d+)/.exec(line ?? '')?.[1]);
  assert.ok(worker > 0, `the worker holding the connection, from:\n${table}`);
  return { socket, worker, answers: () => text };
}

test('a worker that dies while the primary gathers /metrics from it does not take the primary down', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-cluster-faults-'));
  const endpoints: Endpoint[] = [];
  t.after(cleanup(dir, endpoints));
  const args = [
    '--http',
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--api-key',
    'dev-key',
    '--out',
    join(dir, 'store'),
  ];
  const ep = await startEndpoint([...args, '--workers', '2', '--metrics-path', '/metrics']);
  endpoints.push(ep);
  const primary = ep.child.pid as number;
  const { socket, worker, answers } = await connectionToAWorker(ep.port);
  const workers = execFileSync('cat', [`/proc/${primary}/task/${primary}/children`])
    .toString()
    .trim()
    .split(/\s+/);
  const other = Number(workers.find((pid) => Number(pid) !== worker));

  // The primary stopped, the gather request is on its way and the other worker dies: once the primary
  // runs again, it asks a worker whose channel it has not yet seen close.
  process.kill(primary, 'SIGSTOP');
  socket.write('GET /metrics HTTP/1.1\r\nhost: localhost\r\n\r\n');
  await sleep(150);
  process.kill(other, 'SIGKILL');
  await sleep(150);
  process.kill(primary, 'SIGCONT');

  await waitUntil(
    () => answers().includes('segment_endpoint_requests_total') || ep.child.exitCode !== null,
    () => answers(),
  );
  assert.equal(ep.child.exitCode, null, `the primary is still running:\n${ep.output()}`);
  assert.doesNotMatch(ep.output(), /uncaught exception/);
  await waitUntil(
    () =>
      /"worker":2[^\n]*"msg":"worker listening"[\s\S]*"worker":2|starting another[\s\S]*worker listening/.test(
        ep.output(),
      ),
    () => ep.output(),
  );
  socket.destroy();
  ep.child.kill('SIGTERM');
  assert.equal(await ep.exit, 0, ep.output());
});

test('a worker whose event loop is blocked is killed and replaced; the other serves meanwhile', async (t) => {
  // A partner's handler that spins (a synchronous loop, a regex gone wrong) holds its worker's loop: no
  // timeout of its own can fire there, and round-robin kept handing it connections that hung for good.
  const { dir, out, start } = setUp(t, 'blocked');
  const handlers = join(dir, 'spin.mjs');
  writeFileSync(
    handlers,
    `export default { track(event) { if (event.event === 'spin') { const end = Date.now() + 60_000; while (Date.now() < end); } } };\n`,
  );
  const ep = await start(['--out', out, '--handlers', handlers]);
  const agent = new Agent({ keepAlive: false, ca: testCert().cert });
  t.after(() => agent.destroy());
  // Round-robin: of two connections, one reaches each worker; the first blocks its worker.
  const spun = send(agent, ep.url, trackEvent({ event: 'spin' }));
  const served = await send(agent, ep.url, trackEvent({ event: 'Signed Up' }));
  assert.equal(served.status, 200, 'the other worker serves');
  await waitFor(ep.output, /worker \d has not answered for \d+ s[^\n]*killing it/, GUARD_MS * 2);
  await waitFor(ep.output, /was killed by SIGKILL: starting another/, GUARD_MS);
  assert.equal((await spun).status, 0, 'its connection ended unanswered: Segment retries the event');
  await stopCleanly(ep);
});

test('--port 0: when every worker dies at once, their replacements serve on the port announced', async (t) => {
  // node:cluster closes a listening socket no worker holds any more: replacements listening on port 0
  // got another free port, and the URL the service announced refused connections for good.
  const { out, start } = setUp(t, 'all-die');
  const ep = await start(['--out', out]);
  const pids = [1, 2].flatMap((n) => listeningPids(ep.output(), n));
  assert.equal(pids.length, 2, ep.output());
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  await waitUntil(
    () => [1, 2].every((n) => listeningPids(ep.output(), n).length === 2),
    () => `both workers replaced in:\n${ep.output()}`,
    GUARD_MS,
  );
  assert.deepEqual(await freshStatuses(t, ep, 2), [200, 200], ep.output());
  await stopCleanly(ep);
});

test("a worker's last line, when something its handlers started throws, says which worker it was", async (t) => {
  // With several workers dying, "uncaught exception" lines that name no worker could not be matched to
  // the primary's "worker K exited with code 1".
  const { dir, out, start } = setUp(t, 'crash-line');
  const handlers = join(dir, 'throws-later.mjs');
  writeFileSync(
    handlers,
    `export default { track(event) { if (event.event === 'crash') setTimeout(() => { throw new Error('thrown from a timer'); }); } };\n`,
  );
  const ep = await start(['--out', out, '--handlers', handlers]);
  const agent = new Agent({ keepAlive: false, ca: testCert().cert });
  t.after(() => agent.destroy());
  await send(agent, ep.url, trackEvent({ event: 'crash' }));
  await waitFor(ep.output, /worker \d exited with code 1/, GUARD_MS);
  const lines = ep
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'));
  const entries = lines.map((line) => JSON.parse(line) as { msg?: string; worker?: number; pid?: number });
  const fatal = entries.find((e) => e.msg === 'uncaught exception');
  const exited = entries.find((e) => /exited with code 1/.test(e.msg ?? ''));
  assert.ok(fatal !== undefined && exited !== undefined, ep.output());
  assert.equal(fatal.worker, exited.worker, ep.output());
  await stopCleanly(ep);
});

test('a worker whose event loop is held while it starts: the others serve, the start-up line comes, it is not killed', async (t) => {
  // Worker 2's module holds its loop for 15 s at its top level, then finishes (a synchronous migration,
  // a large file read): one process would be left to finish, and so is it. The start-up line, which
  // waits for every worker to listen or fail, comes once it has been silent past the watchdog's limit.
  const { dir, out, start } = setUp(t, 'held-at-start');
  const handlers = join(dir, 'holds-15-s.mjs');
  writeFileSync(
    handlers,
    [
      `if (process.env.SEGMENT_ENDPOINT_WORKER === '2') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 15_000);`,
      `export default { track() {} };`,
      '',
    ].join('\n'),
  );
  const bound = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error('no start-up line within the bound')), GUARD_MS * 2).unref(),
  );
  const ep = await Promise.race([start(['--out', out, '--handlers', handlers]), bound]);
  assert.match(ep.output(), /worker 2 has not answered for \d+ s while starting/);
  assert.match(ep.output(), /listening on \S+ \(1 of 2 workers serving \(see the errors above\), /);
  await waitUntil(
    () => listeningPids(ep.output(), 2).length === 1,
    () => `worker 2 listening once its module finished, in:\n${ep.output()}`,
    GUARD_MS,
  );
  assert.doesNotMatch(ep.output(), /killing it|starting another/);
  assert.deepEqual(await freshStatuses(t, ep, 2), [200, 200], ep.output());
  await stopCleanly(ep);
});
