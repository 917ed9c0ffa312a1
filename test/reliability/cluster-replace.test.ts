// --workers when the files change under a running fleet, or a worker keeps dying: a replaced worker serves
// what the others serve (its configuration comes from the primary), and replacements that die while a
// worker serves do not stop the service; a SIGHUP the primary got while starting reaches the workers.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { test } from 'node:test';
import { trackEvent } from '../helpers.ts';
import { makeCert, servedFingerprint, testCert } from '../helpers-cert.ts';
import { waitFor, waitUntil } from '../helpers-wait.ts';
import {
  drainThenFail,
  FIVE_STARTS_MS,
  freshStatuses,
  GUARD_MS,
  handlersModule,
  listeningLogged,
  listeningPids,
  setUp,
} from './cluster-harness.ts';
import { cleanup, send, startEndpoint, stopCleanly } from './harness.ts';

test('a replaced worker runs what the others run, not what the files say since', async (t) => {
  // A SIGHUP came with a certificate file that does not load (refused: the current one stays), and the
  // operator has since written the next key into the keys file, for the next SIGHUP. A worker that dies
  // then is replaced by one that serves the same keys and certificate as the other, rather than dying on
  // the file (five times, then the primary stopped every worker) or answering the next key's events alone.
  const { dir, flags } = setUp(t, 'replaced');
  const keys = join(dir, 'keys');
  writeFileSync(keys, 'k-now\n');
  const withoutKey = flags.slice(0, flags.indexOf('--api-key'));
  const ep = await startEndpoint([...withoutKey, '--api-keys-file', keys, '--out', join(dir, 'store')]);
  t.after(cleanup(dir, [ep]));
  writeFileSync(join(dir, 'cert.pem'), 'not a certificate');
  ep.child.kill('SIGHUP');
  await waitFor(ep.output, /certificate reload failed; keeping the current one/, GUARD_MS);
  // The keys file is read after the certificate: the next key is written once this reload has ended,
  // not while it may still be reading (a slow host then had the fleet load k-next with this SIGHUP).
  await waitFor(ep.output, /SIGHUP: every worker reloads the API keys/, GUARD_MS);
  writeFileSync(keys, 'k-next\n');
  const [pid] = listeningPids(ep.output(), 1);
  assert.ok(pid !== undefined, ep.output());
  process.kill(pid, 'SIGKILL');
  await waitUntil(
    () => listeningPids(ep.output(), 1).length === 2,
    () => `a second "worker listening" of worker 1 in:\n${ep.output()}`,
    GUARD_MS,
  );
  // New connections go to either worker (round robin): every one answers as the fleet did.
  const agent = new Agent({ keepAlive: false, ca: testCert().cert });
  t.after(() => agent.destroy());
  const as = (key: string, n: number) =>
    send(agent, ep.url, trackEvent({ messageId: `${key}-${n}` }), key).then((a) => a.status);
  const now = await Promise.all(Array.from({ length: 6 }, (_, n) => as('k-now', n)));
  const next = await Promise.all(Array.from({ length: 6 }, (_, n) => as('k-next', n)));
  assert.deepEqual(now, Array(6).fill(200));
  assert.deepEqual(next, Array(6).fill(401));
  await stopCleanly(ep);
});

test('replacements that keep dying while a worker serves do not take it down', async (t) => {
  // A --handlers module broken in place: workers started from now on die loading it, the one running
  // serves on. Five in a row used to stop the primary, which killed the serving worker too.
  const { dir, start } = setUp(t, 'broken-in-place');
  const broken = join(dir, 'broken');
  const module = join(dir, 'handlers.mjs');
  const check = `if (existsSync(${JSON.stringify(broken)})) throw new Error('handlers broken in place');`;
  writeFileSync(module, `import { existsSync } from 'node:fs';\n${check}\nexport default { track() {} };\n`);
  const ep = await start(['--handlers', module]);
  const [pid] = listeningPids(ep.output(), 1);
  assert.ok(pid !== undefined, ep.output());
  writeFileSync(broken, '');
  process.kill(pid, 'SIGKILL');
  const replacements = () => ep.output().match(/worker 1 [^"]* starting another/g)?.length ?? 0;
  await waitUntil(
    // The fifth death in a row is the one that used to stop the primary.
    () => replacements() >= 5,
    () => `five replacements of worker 1 in:\n${ep.output()}`,
    FIVE_STARTS_MS,
  );
  assert.equal(ep.child.exitCode, null, ep.output());
  const agent = new Agent({ keepAlive: false, ca: testCert().cert });
  t.after(() => agent.destroy());
  const answers = await Promise.all(
    Array.from({ length: 4 }, (_, n) => send(agent, ep.url, trackEvent({ messageId: `served-${n}` }))),
  );
  assert.deepEqual(
    answers.map((a) => a.status),
    Array(4).fill(200),
  );
  rmSync(broken);
  await waitUntil(
    () => listeningPids(ep.output(), 1).length === 2,
    () => `worker 1 listening again in:\n${ep.output()}`,
    GUARD_MS,
  );
  await stopCleanly(ep);
});

test('a SIGHUP while the primary reads its configuration has the workers serve the renewed certificate', async (t) => {
  // The certificate renewed and SIGHUP sent while the process starts: the primary had read the old pair
  // already, and its workers take their pair from it. The keys file is a FIFO, so that the primary is
  // held reading its configuration (after the certificate, with its signal listeners in place) until
  // the test writes the keys.
  const { dir, flags } = setUp(t, 'early-hup');
  const keys = join(dir, 'keys.fifo');
  execFileSync('mkfifo', [keys]);
  const withoutKey = flags.slice(0, flags.indexOf('--api-key'));
  let child: ChildProcess | undefined;
  const started = startEndpoint(
    [...withoutKey, '--api-keys-file', keys, '--out', join(dir, 'store')],
    {},
    (c) => {
      child = c;
    },
  );
  const writer = await open(keys, 'w'); // once the primary opens it to read
  const renewed = makeCert(dir, 'renewed');
  copyFileSync(renewed.cert, join(dir, 'cert.pem'));
  copyFileSync(renewed.key, join(dir, 'key.pem'));
  child?.kill('SIGHUP');
  await writer.writeFile('dev-key\n');
  await writer.close();
  const ep = await started;
  t.after(cleanup(dir, [ep]));
  await waitFor(ep.output, /every worker reloads the certificate/, GUARD_MS);
  await waitUntil(
    () => listeningPids(ep.output(), 1).length + listeningPids(ep.output(), 2).length === 2,
    () => `both workers listening in:\n${ep.output()}`,
    GUARD_MS,
  );
  const expected = new X509Certificate(readFileSync(renewed.cert)).fingerprint256;
  // Consecutive connections go to alternate workers (round robin): both are asked.
  const served = [];
  for (let n = 0; n < 4; n++) served.push(await servedFingerprint(ep.port));
  assert.deepEqual(served, Array(4).fill(expected));
  ep.child.kill('SIGTERM'); // not stopCleanly: its health check trusts the first certificate only
  assert.equal(await ep.exit, 0, ep.output());
});

test('a worker that can never start while another serves: the start-up line still comes, saying so', async (t) => {
  // Worker 2 dies loading its module, every time, once worker 1 serves (a failure with none serving
  // stops the primary: every worker would fail the same). The line that says where the service listens
  // waited for every worker to listen, so it never came: a script waiting for it (and anyone who gave
  // --port 0) never learnt the service was up, nor where.
  const { dir, flags } = setUp(t, 'never-starts');
  const module = join(dir, 'handlers.mjs');
  // Worker 2 throws once worker 1 listens (the test says so with a file), however slow the machine.
  const serving = join(dir, 'worker-1-listens');
  const check = `if (process.env.SEGMENT_ENDPOINT_WORKER === '2') { while (!existsSync(${JSON.stringify(serving)})) await new Promise((r) => setTimeout(r, 20)); throw new Error('worker 2 cannot start'); }`;
  writeFileSync(module, `import { existsSync } from 'node:fs';\n${check}\nexport default { track() {} };\n`);
  let child: ChildProcess | undefined;
  t.after(() => child?.kill('SIGKILL'));
  const started = startEndpoint([...flags, '--handlers', module], {}, (spawned) => {
    child = spawned;
    let output = '';
    const look = (chunk: Buffer) => {
      output += chunk.toString();
      if (/"worker":1,[^\n]*"msg":"worker listening"/.test(output)) writeFileSync(serving, '');
    };
    spawned.stdout?.on('data', look);
    spawned.stderr?.on('data', look);
  });
  const bound = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error('no start-up line within the bound')), GUARD_MS).unref(),
  );
  const ep = await Promise.race([started, bound]);
  assert.match(ep.output(), /listening on \S+ \(1 of 2 workers serving \(see the errors above\), /);
  const said = await listeningLogged(ep);
  assert.deepEqual([said.url, said.workers, said.of], [ep.url, 1, 2], ep.output());
  assert.match(ep.output(), /worker 2 cannot start/);
  assert.deepEqual(await freshStatuses(t, ep, 2), [200, 200], ep.output());
  await stopCleanly(ep);
});

test('SIGTERM while a replacement is still loading a module that then fails: the serving worker drains, exit 0', async (t) => {
  // A worker that never listened held no event: its failure to start, or the kill that answers it
  // during the drain, is no failure of the drain. The primary exited 1 when SIGTERM came while worker
  // 2's replacement was still loading its module (seen under a loaded machine): a deploy script read
  // a clean stop as a failed one.
  const { dir, flags } = setUp(t, 'term-while-replacing');
  const at = (name: string) => JSON.stringify(join(dir, name));
  const wait = (name: string) =>
    `while (!existsSync(${at(name)})) await new Promise((r) => setTimeout(r, 20));`;
  // Worker 2's first process dies once worker 1 listens; its replacement says it is loading, then waits
  // for the test's word to fail.
  const worker2 = [
    `if (!existsSync(${at('first-died')})) { ${wait('worker-1-listens')} writeFileSync(${at('first-died')}, ''); throw new Error('worker 2 cannot start'); }`,
    `writeFileSync(${at('replacement-loading')}, ''); ${wait('fail-now')} throw new Error('the replacement cannot start either');`,
  ].join('\n');
  const module = handlersModule(dir, worker2);
  let child: ChildProcess | undefined;
  t.after(() => child?.kill('SIGKILL'));
  const ep = await startEndpoint([...flags, '--handlers', module], {}, (spawned) => {
    child = spawned;
    let output = '';
    const look = (chunk: Buffer) => {
      output += chunk.toString();
      if (/"worker":1,[^\n]*"msg":"worker listening"/.test(output))
        writeFileSync(join(dir, 'worker-1-listens'), '');
    };
    spawned.stdout?.on('data', look);
    spawned.stderr?.on('data', look);
  });
  await waitUntil(
    () => existsSync(join(dir, 'replacement-loading')),
    () => `worker 2's replacement loading, in:\n${ep.output()}`,
    GUARD_MS,
  );
  await drainThenFail(ep, dir);
});
