import assert from 'node:assert/strict';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, type TestContext, test } from 'node:test';
import { BUILT, commandDir, runCli, startCli, storedEvents } from './cli-harness.ts';
import { segmentHeaders, trackEvent } from './helpers.ts';
import { testCert } from './helpers-cert.ts';
import { httpsCall, keepAliveAgent } from './helpers-clients.ts';
import { storesInPostgresAndRedis } from './helpers-services.ts';

// The features of the built dist/cli.js a default start does not run (the subcommands' work, --workers,
// --postgres, --idempotency-redis), each run as a user runs it. The tests that run these features start
// the CLI from test-build/ (its modules one by one), and the single executable is bundled apart
// (sea.test.ts): the code the package ships for them in dist/cli-main.cjs went unstarted.

describe('the built dist/cli.js, the features a default start does not run', () => {
  let dir: string;
  let tls: string[];
  const { cert } = testCert();

  before(() => {
    const made = commandDir();
    dir = made.dir;
    tls = ['--cert', made.certFile, '--key', made.keyFile, '--port', '0', '--host', '127.0.0.1'];
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Starts the built endpoint with `args` after the TLS flags, killed after the test whatever happens. */
  const start = async (t: TestContext, args: string[]) => {
    const run = await startCli([...tls, '--api-key', 'k', ...args], {}, BUILT);
    t.after(() => run.child.kill('SIGKILL'));
    return run;
  };

  /** Sends `event` on a connection of its own: the status. */
  const send = async (url: string, event: unknown) => {
    const agent = keepAliveAgent(cert);
    try {
      return (await httpsCall(agent, url, { body: event, headers: segmentHeaders('k') })).status;
    } finally {
      agent.destroy();
    }
  };

  /** SIGTERM: the exit code, once the process drained. */
  const stop = async (run: Awaited<ReturnType<typeof start>>) => {
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0, run.stderr());
  };

  const messageIds = (out: string) =>
    storedEvents(out).map((record) => (record.event as { messageId: string }).messageId);

  test('`test` and `load` send events to the endpoint, and `read` prints what it stored', async (t) => {
    const out = join(dir, 'data');
    const ep = await start(t, ['--out', out]);
    const event = trackEvent();
    assert.equal(await send(ep.url, event), 200);
    const suite = await runCli(['test', ep.url, '--api-key', 'k', '--insecure'], {}, BUILT);
    assert.equal(suite.code, 0, suite.stdout + suite.stderr);
    assert.match(suite.stdout, /\d+ passed, 0 failed/);
    const args = ['--api-key', 'k', '--rate', '20', '--duration', '1', '--insecure'];
    const load = await runCli(['load', ep.url, ...args], {}, BUILT);
    assert.equal(load.code, 0, load.stdout + load.stderr);
    assert.match(load.stdout, /Requests\/s:/);
    await stop(ep);
    const read = await runCli(['read', '--out', out], {}, BUILT);
    assert.equal(read.code, 0, read.stderr);
    const ids = read.stdout
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => (JSON.parse(line) as { event: { messageId: string } }).event.messageId);
    assert.deepEqual(ids, messageIds(out));
    assert.ok(ids.includes(event.messageId as string));
  });

  test('--workers 2: both workers serve and store, and both drain on SIGTERM', async (t) => {
    const out = join(dir, 'workers');
    const ep = await start(t, ['--out', out, '--workers', '2']);
    // Each on a connection of its own: the primary hands connections to the workers in turn.
    const events = [trackEvent(), trackEvent(), trackEvent(), trackEvent()];
    for (const event of events) assert.equal(await send(ep.url, event), 200);
    await stop(ep);
    assert.deepEqual(messageIds(out).sort(), events.map((e) => e.messageId).sort());
    // A file a worker (-w1, -w2): each stored some.
    const files = readdirSync(out).filter((f) => f.endsWith('.ndjson'));
    assert.deepEqual(files.map((f) => /-(w\d+)\.ndjson$/.exec(f)?.[1]).sort(), ['w1', 'w2']);
  });

  test('--postgres stores an event, and --idempotency-redis keeps its key in Redis', (t) =>
    storesInPostgresAndRedis('built_events', (args) => start(t, args), send, stop));
});
