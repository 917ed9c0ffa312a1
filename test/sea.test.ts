import assert from 'node:assert/strict';
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { segmentHeaders, trackEvent } from './helpers.ts';
import { testCert } from './helpers-cert.ts';
import { httpsCall, keepAliveAgent } from './helpers-clients.ts';
import { storesInPostgresAndRedis } from './helpers-services.ts';
import { type Spawned, spawnWith } from './helpers-spawn.ts';
import { waitFor } from './helpers-wait.ts';

// The single executable (`make sea`, scripts/sea.ts) as a VM gets it: the file alone in an empty
// directory, started with nothing of this process's environment and a PATH without node, so that
// everything it runs comes from inside it: pg and @redis/client included.

const ROOT = join(import.meta.dirname, '..');
const BINARY = join(ROOT, 'dist', 'segment-endpoint-linux-x64');
const FILE = 'segment-endpoint-linux-x64';
const NO_NODE = { PATH: '/nonexistent-bin' };

describe('the single executable, dist/segment-endpoint-linux-x64', () => {
  let dir: string;
  const { cert, key } = testCert();
  const tls = ['--cert', 'cert.pem', '--key', 'key.pem', '--port', '0', '--host', '127.0.0.1'];

  before(() => {
    assert.ok(
      existsSync(BINARY),
      'dist/segment-endpoint-linux-x64 is missing: run `make sea` (make test does)',
    );
    dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-sea-'));
    copyFileSync(BINARY, join(dir, FILE));
    writeFileSync(join(dir, 'cert.pem'), cert);
    writeFileSync(join(dir, 'key.pem'), key);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** The binary, run in `dir` as `./segment-endpoint-linux-x64 ARGS`; its output kept. */
  const run = (args: string[]): Spawned => spawnWith(`./${FILE}`, args, dir, NO_NODE);

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

  test('--version prints the version of package.json, and --help the usage, and nothing on stderr', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const version = run(['--version']);
    assert.equal(await version.exit, 0, version.stderr());
    assert.equal(version.stdout(), `${pkg.version}\n`);
    // No ExperimentalWarning from node at each start (disableExperimentalSEAWarning).
    assert.equal(version.stderr(), '');
    const help = run(['--help']);
    assert.equal(await help.exit, 0, help.stderr());
    assert.match(help.stdout(), /^Usage: segment-endpoint/);
  });

  test('serves HTTPS, stores an event, exits 0 on SIGTERM; `read` prints it back', async () => {
    const ep = await start(['--out', 'data']);
    const event = trackEvent();
    assert.equal(await send(ep.url, event), 200);
    await stop(ep);
    assert.deepEqual(stored(join(dir, 'data')), [event.messageId]);

    const read = run(['read', '--out', 'data']);
    assert.equal(await read.exit, 0, read.stderr());
    const lines = read
      .stdout()
      .split('\n')
      .filter((line) => line !== '');
    assert.deepEqual(
      lines.map((line) => (JSON.parse(line) as { event: { messageId: string } }).event.messageId),
      [event.messageId],
    );
  });

  test('--workers 2: node:cluster starts the binary again for each worker, and both drain on SIGTERM', async () => {
    const ep = await start(['--out', 'workers', '--workers', '2']);
    assert.match(ep.child.stdout(), /\(2 workers, /);
    for (const n of [1, 2]) await waitFor(ep.child.stderr, new RegExp(`"worker":${n},.*"worker listening"`));
    const events = [trackEvent(), trackEvent(), trackEvent(), trackEvent()];
    for (const event of events) assert.equal(await send(ep.url, event), 200);
    await stop(ep);
    assert.deepEqual(stored(join(dir, 'workers')).sort(), events.map((e) => e.messageId).sort());
  });

  test('--handlers loads an ES module from beside it (import() works inside the binary)', async () => {
    writeFileSync(
      join(dir, 'handlers.mjs'),
      "import { appendFileSync } from 'node:fs';\n" +
        "export default { track: (event) => appendFileSync('handled.txt', event.messageId + '\\n') };\n",
    );
    const ep = await start(['--handlers', './handlers.mjs']);
    const event = trackEvent();
    assert.equal(await send(ep.url, event), 200);
    await stop(ep);
    assert.equal(readFileSync(join(dir, 'handled.txt'), 'utf8'), `${event.messageId}\n`);
  });

  test('--handlers with a TypeScript module: the binary says it runs no --import loader, and what works', async () => {
    // It told the user NODE_OPTIONS='--import tsx', which a single executable does not run.
    writeFileSync(
      join(dir, 'handlers.ts'),
      'export default { track() { return { status: 202 as const }; } };\n',
    );
    const child = spawnWith(`./${FILE}`, [...tls, '--api-key', 'k', '--handlers', './handlers.ts'], dir, {
      ...NO_NODE,
      NODE_OPTIONS: '--import tsx',
    });
    assert.equal(await child.exit, 1);
    assert.match(
      child.stderr(),
      /cannot load \.\/handlers\.ts: .*runs no --import loader: compile it to \.js/,
    );
    assert.doesNotMatch(child.stderr(), /needs a loader: NODE_OPTIONS/);
  });

  test('`load` sends Segment-shaped traffic from inside it', async () => {
    const ep = await start(['--out', 'load']);
    const load = run(['load', ep.url, '--api-key', 'k', '--rate', '20', '--duration', '1', '--insecure']);
    assert.equal(await load.exit, 0, load.stdout() + load.stderr());
    assert.match(load.stdout(), /Requests\/s:/);
    await stop(ep);
    assert.ok(stored(join(dir, 'load')).length > 0);
  });

  test('--postgres and --idempotency-redis: the pg and @redis/client inside it store an event', () =>
    storesInPostgresAndRedis('sea_events', start, send, stop));
});
