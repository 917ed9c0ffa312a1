import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { BUILT } from './cli-harness.ts';
import { segmentHeaders, trackEvent } from './helpers.ts';
import { testCert } from './helpers-cert.ts';
import { httpsCall, keepAliveAgent } from './helpers-clients.ts';
import { type Spawned, spawnWith } from './helpers-spawn.ts';
import { waitFor } from './helpers-wait.ts';
import { startPostgres } from './services/postgres.ts';
import { startRedis } from './services/redis.ts';

// The features of the built dist/cli.js a default start does not run (the subcommands, --workers,
// --postgres, --idempotency-redis), each run as a user runs it: the rest of the tests start the CLI from
// test-build/ (its modules one by one), and the single executable is bundled apart (sea.test.ts), so the
// code the package ships for them, bundled in dist/cli-main.cjs, would otherwise go unstarted.

describe('the built dist/cli.js, the features a default start does not run', () => {
  let dir: string;
  const { cert, key } = testCert();
  const tls = ['--cert', 'cert.pem', '--key', 'key.pem', '--port', '0', '--host', '127.0.0.1'];

  before(() => {
    assert.ok(existsSync(BUILT[0] as string), 'dist/cli.js is missing: run `make build` (make test does)');
    dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-chunks-'));
    writeFileSync(join(dir, 'cert.pem'), cert);
    writeFileSync(join(dir, 'key.pem'), key);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** `node dist/cli.js ARGS` in `dir`, with no variable of this process but PATH; its output kept. */
  const run = (args: string[]): Spawned =>
    spawnWith(process.execPath, [BUILT[0] as string, ...args], dir, { PATH: process.env.PATH });

  /** Starts the endpoint with `args` after the TLS flags; its URL once it listens. */
  const start = async (args: string[]) => {
    const child = run([...tls, '--api-key', 'k', ...args]);
    const url = (await waitFor(child.stdout, /listening on (\S+)/))[1] as string;
    return { child, url };
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
  const stop = async ({ child }: { child: Spawned }) => {
    child.child.kill('SIGTERM');
    assert.equal(await child.exit, 0, child.stderr());
  };

  /** The messageIds stored under `out`, every file's lines. */
  const stored = (out: string) =>
    readdirSync(out)
      .filter((f) => f.endsWith('.ndjson'))
      .flatMap((f) => readFileSync(join(out, f), 'utf8').split('\n'))
      .filter((line) => line !== '')
      .map((line) => (JSON.parse(line) as { event: { messageId: string } }).event.messageId);

  test('`test` and `load` send events to the endpoint, and `read` prints what it stored', async () => {
    const ep = await start(['--out', 'data']);
    const event = trackEvent();
    assert.equal(await send(ep.url, event), 200);
    const suite = run(['test', ep.url, '--api-key', 'k', '--insecure']);
    assert.equal(await suite.exit, 0, suite.stdout() + suite.stderr());
    assert.match(suite.stdout(), /\d+ passed, 0 failed/);
    const load = run(['load', ep.url, '--api-key', 'k', '--rate', '20', '--duration', '1', '--insecure']);
    assert.equal(await load.exit, 0, load.stdout() + load.stderr());
    assert.match(load.stdout(), /Requests\/s:/);
    await stop(ep);
    const read = run(['read', '--out', 'data']);
    assert.equal(await read.exit, 0, read.stderr());
    const ids = read
      .stdout()
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => (JSON.parse(line) as { event: { messageId: string } }).event.messageId);
    assert.deepEqual(ids, stored(join(dir, 'data')));
    assert.ok(ids.includes(event.messageId as string));
  });

  test("a subcommand's usage error is said with its hint, as the command's own are", async () => {
    const load = run(['load', 'https://127.0.0.1:1/', '--api-key', 'k', '--connections', '0']);
    assert.equal(await load.exit, 1);
    assert.match(load.stderr(), /--connections .*\nTry 'segment-endpoint load --help'\./);
  });

  test('--workers 2: each worker serves and stores, and both drain on SIGTERM', async () => {
    const ep = await start(['--out', 'workers', '--workers', '2']);
    for (const n of [1, 2]) await waitFor(ep.child.stderr, new RegExp(`"worker":${n},.*"worker listening"`));
    const events = [trackEvent(), trackEvent(), trackEvent(), trackEvent()];
    for (const event of events) assert.equal(await send(ep.url, event), 200);
    await stop(ep);
    assert.deepEqual(stored(join(dir, 'workers')).sort(), events.map((e) => e.messageId).sort());
  });

  test('--postgres with --idempotency-redis stores an event, and its retry once', async () => {
    const services = await Promise.allSettled([startPostgres(), startRedis()]);
    const [postgres, redis] = services.map((s) => (s.status === 'fulfilled' ? s.value : undefined));
    try {
      for (const s of services) if (s.status === 'rejected') throw s.reason;
      assert.ok(postgres !== undefined && redis !== undefined);
      const args = ['--postgres', postgres.url, '--postgres-table', 'chunk_events'];
      const ep = await start([...args, '--idempotency-redis', redis.url]);
      const event = trackEvent();
      assert.equal(await send(ep.url, event), 200);
      assert.equal(await send(ep.url, event), 200);
      await stop(ep);
      const client = new pg.Client({ connectionString: postgres.url });
      await client.connect();
      try {
        const { rows } = await client.query('SELECT message_id FROM chunk_events');
        assert.deepEqual(rows, [{ message_id: event.messageId }]);
      } finally {
        await client.end();
      }
    } finally {
      await Promise.all([postgres?.destroy(), redis?.destroy()]);
    }
  });
});
