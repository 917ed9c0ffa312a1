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
import { pathToFileURL } from 'node:url';
import { segmentHeaders, trackEvent } from './helpers.ts';
import { testCert } from './helpers-cert.ts';
import { httpsCall, keepAliveAgent } from './helpers-clients.ts';
import { spawnClean } from './helpers-spawn.ts';
import { waitFor } from './helpers-wait.ts';

const ROOT = join(import.meta.dirname, '..');
const BUNDLE = join(ROOT, 'dist', 'segment-endpoint.mjs');
const FILE = 'segment-endpoint.mjs';

const run = (command: string, args: string[], cwd: string) => spawnClean(command, args, cwd);

describe('the single-file bundle, dist/segment-endpoint.mjs', () => {
  // An empty directory holding the bundle alone: no node_modules, no package.json to fall back on.
  let dir: string;
  const { cert, key } = testCert();

  before(() => {
    assert.ok(existsSync(BUNDLE), 'dist/segment-endpoint.mjs is missing: run `make dist` (make test does)');
    dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-dist-'));
    copyFileSync(BUNDLE, join(dir, FILE));
    writeFileSync(join(dir, 'cert.pem'), cert);
    writeFileSync(join(dir, 'key.pem'), key);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('--version prints the version of package.json, and --help the usage', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const version = run(process.execPath, [FILE, '--version'], dir);
    assert.equal(await version.exit, 0, version.stderr());
    assert.equal(version.stdout(), `${pkg.version}\n`);
    const help = run(process.execPath, [FILE, '--help'], dir);
    assert.equal(await help.exit, 0, help.stderr());
    assert.match(help.stdout(), /^Usage: segment-endpoint/);
  });

  test('runs as an executable through its #! line', async () => {
    const version = run(join(dir, FILE), ['--version'], dir);
    assert.equal(await version.exit, 0, version.stderr());
    assert.match(version.stdout(), /^\d+\.\d+\.\d+/);
  });

  test('serves HTTPS, stores an event, and exits 0 on SIGTERM', async () => {
    const out = join(dir, 'data');
    const args = ['--cert', 'cert.pem', '--key', 'key.pem', '--port', '0', '--host', '127.0.0.1'];
    const child = run(process.execPath, [FILE, ...args, '--api-key', 'k', '--out', out], dir);
    const event = trackEvent();
    try {
      const url = (await waitFor(child.stdout, /listening on (\S+)/))[1] as string;
      const agent = keepAliveAgent(cert);
      const res = await httpsCall(agent, url, { body: event, headers: segmentHeaders('k') });
      agent.destroy();
      assert.equal(res.status, 200, res.body);
    } finally {
      child.child.kill('SIGTERM');
    }
    assert.equal(await child.exit, 0, child.stderr());

    const stored = readdirSync(out)
      .filter((f) => f.endsWith('.ndjson'))
      .flatMap((f) => readFileSync(join(out, f), 'utf8').split('\n'))
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as { event: { messageId: string } });
    assert.deepEqual(
      stored.map((r) => r.event.messageId),
      [event.messageId],
    );
  });

  test("a --handlers module's errors, from its own install of the package, are answered by their code", async () => {
    // The bundle holds its own copy of the error classes; the module's come from the package (here
    // dist/errors.js): a RetryError was not the bundle's, and answered 503 HTTP_503 with a generic message.
    const errors = JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'errors.js')).href);
    writeFileSync(
      join(dir, 'handlers.mjs'),
      `import { EventNotSupported, RetryError } from ${errors};
export default {
  track() { throw new RetryError('the CRM is down'); },
  page() { throw new EventNotSupported('pages are not kept here'); },
};
`,
    );
    const args = ['--http', '--port', '0', '--host', '127.0.0.1', '--handlers', 'handlers.mjs'];
    const child = run(process.execPath, [FILE, ...args, '--api-key', 'k'], dir);
    try {
      const url = (await waitFor(child.stdout, /listening on (\S+)/))[1] as string;
      const post = async (event: object) => {
        const res = await fetch(url, {
          method: 'POST',
          headers: segmentHeaders('k'),
          body: JSON.stringify(event),
        });
        return { status: res.status, ...((await res.json()) as { code: string; message: string }) };
      };
      assert.deepEqual(await post(trackEvent()), {
        status: 503,
        code: 'SEG_RETRY',
        message: 'the CRM is down',
      });
      assert.deepEqual(await post({ type: 'page', userId: 'u' }), {
        status: 501,
        code: 'SEG_TYPE_UNSUPPORTED',
        message: 'pages are not kept here',
      });
    } finally {
      child.child.kill('SIGTERM');
    }
    assert.equal(await child.exit, 0, child.stderr());
  });
});

test("the published declarations type-check in a consumer's strict build, skipLibCheck off (its default)", async () => {
  // dist/generated/validators.d.ts declared Ajv's options parameter without the names it destructures:
  // 14 errors in any consumer that checks its libraries' declarations.
  const entries = ['index', 'express', 'fastify', 'errors'].map((name) => join(ROOT, 'dist', `${name}.d.ts`));
  for (const entry of entries) assert.ok(existsSync(entry), `${entry} is missing: run \`make build\``);
  const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
  const args = ['--noEmit', '--strict', '--skipLibCheck', 'false', '--target', 'es2022'];
  const flags = [...args, '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node'];
  const checked = run(tsc, [...flags, ...entries], ROOT);
  assert.equal(await checked.exit, 0, checked.stdout());
});
