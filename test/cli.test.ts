import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ApiKeySpec } from '../src/auth.ts';
import { type CliConfig, parseConfig, parseKeySpec, parseKeysFile, UsageError } from '../src/config.ts';
import { silentLogger } from '../src/log.ts';
import { resolveHandlerOptions } from '../src/options.ts';
import {
  CLI_SOURCE,
  httpFlags,
  httpsCall,
  keepAliveAgent,
  ROOT,
  segmentHeaders,
  spawnClean,
  testCert,
  trackEvent,
  waitFor,
} from './helpers.ts';

const SOURCE = CLI_SOURCE;
const BUILT = [join(ROOT, 'dist', 'cli.js')];

interface Running {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  exit: Promise<number | null>;
}

interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion (for --help, bad usage). */
async function runCli(args: string[], env: NodeJS.ProcessEnv = {}, entry = SOURCE): Promise<Finished> {
  const run = spawnClean(process.execPath, [...entry, ...args], ROOT, env);
  const code = await run.exit;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

/** Starts the CLI and waits for its start-up line. */
async function startCli(args: string[], env: NodeJS.ProcessEnv = {}, entry = SOURCE): Promise<Running> {
  const run = spawnClean(process.execPath, [...entry, ...args], ROOT, env);
  const started = waitFor(run.stdout, /listening on (\S+)/);
  const exited = run.exit.then((code) => {
    throw new Error(`exited ${code} before listening: ${run.stderr()}`);
  });
  const url = (await Promise.race([started, exited]))[1] as string;
  return { child: run.child, url, stderr: run.stderr, exit: run.exit };
}

function storedEvents(dir: string): Array<Record<string, unknown>> {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ndjson'))
    .sort()
    .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n'))
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

describe('the segment-endpoint command', () => {
  let dir: string;
  let certFile: string;
  let keyFile: string;
  const { cert, key } = testCert();

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-cli-'));
    certFile = join(dir, 'cert.pem');
    keyFile = join(dir, 'key.pem');
    writeFileSync(certFile, cert);
    writeFileSync(keyFile, key);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const tlsArgs = () => ['--cert', certFile, '--key', keyFile, '--host', '127.0.0.1', '--port', '0'];

  test('--help prints usage and exits 0; --version prints the version', async () => {
    const help = await runCli(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: segment-endpoint/);
    assert.match(help.stdout, /--api-key/);
    const version = await runCli(['--version']);
    assert.equal(version.code, 0);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    assert.equal(version.stdout.trim(), pkg.version);
  });

  test('bad usage exits 1 with one line and a hint', async () => {
    const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
      [['--bogus'], {}, /bogus/],
      [['--http', '--port', '0'], {}, /no API key/],
      [['--api-key', 'k'], {}, /--cert and --key are required/],
      [['--api-key', 'k', '--cert', '/nonexistent.pem', '--key', '/nonexistent.key'], {}, /cannot read/],
      [['--http', '--api-key', 'k', '--port', 'eighty'], {}, /--port must be a whole number/],
      [['--http', '--api-key', 'k:purchase'], {}, /"purchase" is not an event type/],
      [['--http', '--api-key', 'k', '--log-level', 'loud'], {}, /--log-level/],
      [
        ['--http', '--api-key', 'k', '--shutdown-timeout', 'soon'],
        {},
        /--shutdown-timeout must be a number of seconds/,
      ],
      [['--http', '--api-key', 'k', '--max-in-flight', '-1'], {}, /--max-in-flight/],
      [['--http', '--api-key', 'k', '--handlers', '/nonexistent.mjs'], {}, /--handlers: cannot load/],
    ];
    for (const [args, env, message] of cases) {
      const res = await runCli(args, env);
      assert.equal(res.code, 1, args.join(' '));
      assert.match(res.stderr, message, args.join(' '));
      assert.match(res.stderr, /^segment-endpoint: /);
    }
  });

  test('options the server refuses also exit 1, before the store is touched', async () => {
    const out = join(dir, 'refused-store');
    const refused = [
      ['--http', '--path', 'no-slash'],
      ['--cert', certFile, '--key', certFile],
    ];
    for (const args of refused) {
      const res = await runCli([...args, '--api-key', 'k', '--port', '0', '--out', out]);
      assert.equal(res.code, 1, args.join(' '));
      assert.match(res.stderr, /^segment-endpoint: /, args.join(' '));
      assert.equal(existsSync(out), false, `${args.join(' ')}: --out was made`);
    }
  });

  test('refuses to start when --out is not writable: exit 1, one line naming --out and the cause', async () => {
    const file = join(dir, 'a-regular-file');
    writeFileSync(file, '');
    // Paths no process can write to, root included (tests often run as root, for whom mode bits are no
    // bar): below a regular file, and sysfs, which takes no new files (EROFS where mounted read-only).
    const cases: Array<[string, RegExp]> = [[join(file, 'store'), /ENOTDIR/]];
    if (existsSync('/sys/kernel')) cases.push(['/sys', /EACCES|EROFS/]);
    // procfs answers ENOENT to a new directory: Node's recursive mkdir retried it for ever.
    if (existsSync('/proc/self')) cases.push(['/proc/segment-endpoint-store/day', /ENOENT/]);
    for (const [out, cause] of cases) {
      const run = spawnClean(process.execPath, [
        ...SOURCE,
        '--http',
        '--port',
        '0',
        '--api-key',
        'k',
        '--out',
        out,
      ]);
      const started = waitFor(run.stdout, /listening on/).then(() => {
        run.child.kill('SIGKILL');
        return 'started';
      });
      const outcome = await Promise.race([started, run.exit]);
      assert.equal(outcome, 1, `--out ${out}: ${run.stdout()}${run.stderr()}`);
      const lines = run
        .stderr()
        .split('\n')
        .filter((l) => l !== '');
      assert.equal(lines.length, 1, run.stderr());
      assert.match(lines[0] ?? '', /^segment-endpoint: --out /);
      assert.ok(lines[0]?.includes(out), run.stderr());
      assert.match(lines[0] ?? '', cause);
    }
  });

  test('serves HTTPS, stores exactly the accepted events, and keeps them across a restart', async () => {
    const out = join(dir, 'store');
    const accepted: string[] = [];
    const agent = keepAliveAgent(cert);
    const session = async (round: number) => {
      const run = await startCli([...tlsArgs(), '--api-key', 'dev-key', '--out', out]);
      assert.match(run.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
      for (let i = 0; i < 10; i++) {
        const event = trackEvent({ messageId: `r${round}-${i}` });
        const res = await httpsCall(agent, run.url, { body: event, headers: segmentHeaders('dev-key') });
        assert.equal(res.status, 200);
        accepted.push(event.messageId);
      }
      // Refused events are not stored.
      const refused = [
        httpsCall(agent, run.url, {
          body: { type: 'track', userId: 'u', messageId: 'bad-1' },
          headers: segmentHeaders('dev-key'),
        }),
        httpsCall(agent, run.url, {
          body: trackEvent({ messageId: 'bad-2' }),
          headers: segmentHeaders('wrong-key'),
        }),
        httpsCall(agent, run.url, {
          body: { type: 'purchase', userId: 'u', messageId: 'bad-3' },
          headers: segmentHeaders('dev-key'),
        }),
      ];
      assert.deepEqual(
        (await Promise.all(refused)).map((r) => r.status),
        [400, 401, 501],
      );
      agent.destroy();
      run.child.kill('SIGTERM');
      assert.equal(await run.exit, 0);
      assert.doesNotMatch(run.stderr(), /dev-key/);
    };
    await session(1);
    await session(2);
    const stored = storedEvents(out);
    assert.deepEqual(
      stored.map((r) => (r.event as { messageId: string }).messageId),
      accepted,
    );
    for (const record of stored) {
      assert.match(record.source as string, /^[0-9a-f]{12}$/);
      assert.deepEqual(record.settings, {});
      assert.ok(!Number.isNaN(Date.parse(record.receivedAt as string)));
    }
    assert.doesNotMatch(JSON.stringify(stored), /dev-key/);
  });

  test('SIGTERM drains: an event in flight finishes with 200, then the process exits 0', async () => {
    const handlers = join(dir, 'slow-handlers.mjs');
    writeFileSync(
      handlers,
      `export default {
        // Still running when the signal comes, whenever it comes: it finishes on the SIGTERM itself.
        track: async () => { process.stdout.write('handler started\\n'); await new Promise((r) => process.once('SIGTERM', r)); },
      };\n`,
    );
    const run = await startCli([...tlsArgs(), '--api-key', 'k1', '--handlers', handlers]);
    const started = new Promise<void>((resolve) =>
      run.child.stdout?.on('data', (c: Buffer) => c.toString().includes('handler started') && resolve()),
    );
    const agent = keepAliveAgent(cert);
    const inFlight = httpsCall(agent, run.url, { body: trackEvent(), headers: segmentHeaders('k1') });
    await started;
    run.child.kill('SIGTERM');
    const res = await inFlight;
    assert.equal(res.status, 200);
    assert.equal(await run.exit, 0);
    agent.destroy();
  });

  test('SIGHUP during a slow start-up (a reload while starting) neither kills nor stops it', async () => {
    // A handlers module that holds start-up until the test writes a line on stdin, after the SIGHUP: the
    // signal arrives during start-up however slow the machine. (It does not listen for SIGHUP itself,
    // which would hide the default action.)
    const handlers = join(dir, 'slow-start-handlers.mjs');
    writeFileSync(
      handlers,
      `process.stdout.write('handlers loading\\n');
      await new Promise((resolve) => process.stdin.once('data', resolve));
      process.stdin.destroy();
      export default { track: () => {} };\n`,
    );
    const run = spawnClean(process.execPath, [
      ...SOURCE,
      ...tlsArgs(),
      '--api-key',
      'k1',
      '--handlers',
      handlers,
    ]);
    const died = run.exit.then((code) => {
      throw new Error(`exited (${code ?? run.child.signalCode}) before listening: ${run.stderr()}`);
    });
    await Promise.race([waitFor(run.stdout, /handlers loading/), died]);
    run.child.kill('SIGHUP');
    run.child.stdin.write('go\n');
    const url = (await Promise.race([waitFor(run.stdout, /listening on (\S+)/), died]))[1] as string;
    const agent = keepAliveAgent(cert);
    const res = await httpsCall(agent, url, { body: trackEvent(), headers: segmentHeaders('k1') });
    assert.equal(res.status, 200);
    agent.destroy();
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
  });

  test('over plain HTTP, SIGHUP (no certificate to reload) leaves it serving', async () => {
    const run = await startCli(httpFlags('k1'), {
      SEGMENT_ENDPOINT_OUT: join(dir, 'http-hup'),
    });
    run.child.kill('SIGHUP');
    const send = () =>
      fetch(run.url, { method: 'POST', headers: segmentHeaders('k1'), body: JSON.stringify(trackEvent()) });
    // Without a listener the kernel ends the process as the signal arrives: no answer, no exit code.
    assert.equal((await send()).status, 200);
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
  });

  test('keys from --api-key with types, --api-keys-file and SEGMENT_API_KEYS', async () => {
    const keysFile = join(dir, 'keys.txt');
    writeFileSync(keysFile, '# customers\nfile-key\nfile-identify identify\n\n');
    const run = await startCli(
      [...httpFlags('flag-key:track'), '--api-keys-file', keysFile, '--out', join(dir, 'k')],
      { SEGMENT_API_KEYS: 'env-a, env-b' },
    );
    const send = async (key: string, body: unknown) =>
      (await fetch(run.url, { method: 'POST', headers: segmentHeaders(key), body: JSON.stringify(body) }))
        .status;
    const identify = { type: 'identify', userId: 'u1' };
    assert.equal(await send('flag-key', trackEvent()), 200);
    assert.equal(await send('flag-key', identify), 403);
    assert.equal(await send('file-key', identify), 200);
    assert.equal(await send('file-identify', identify), 200);
    assert.equal(await send('file-identify', trackEvent()), 403);
    assert.equal(await send('env-a', trackEvent()), 200);
    assert.equal(await send('env-b', identify), 200);
    assert.equal(await send('nobody', identify), 401);
    run.child.kill('SIGINT');
    assert.equal(await run.exit, 0);
  });

  test('--signature-secret requires X-Signature; a key with its own secret= uses that', async () => {
    const { createHmac } = await import('node:crypto');
    const keysFile = join(dir, 'signed-keys.txt');
    writeFileSync(keysFile, 'own-key secret=own-secret\n');
    const run = await startCli([...httpFlags('k'), '--api-keys-file', keysFile], {
      SEGMENT_ENDPOINT_SIGNATURE_SECRET: 'shared',
      SEGMENT_ENDPOINT_OUT: join(dir, 'signed'),
    });
    const body = JSON.stringify(trackEvent());
    const send = async (key: string, secret?: string) =>
      (
        await fetch(run.url, {
          method: 'POST',
          headers: {
            ...segmentHeaders(key),
            ...(secret && { 'x-signature': createHmac('sha1', secret).update(body).digest('hex') }),
          },
          body,
        })
      ).status;
    assert.equal(await send('k', 'shared'), 200);
    assert.equal(await send('k'), 401);
    assert.equal(await send('k', 'wrong'), 401);
    assert.equal(await send('own-key', 'own-secret'), 200);
    assert.equal(await send('own-key', 'shared'), 401);
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
    assert.doesNotMatch(run.stderr(), /shared|own-secret/);
  });

  test('--signature-secret-file: the secret read from the file is enforced end to end', async () => {
    const { createHmac } = await import('node:crypto');
    const secretFile = join(dir, 'signature-secret');
    writeFileSync(secretFile, 'from-file\n', { mode: 0o600 });
    const args = [...httpFlags(), '--signature-secret-file', secretFile];
    const run = await startCli([...args, '--signature-legacy-batch', '--out', join(dir, 'secret-file')], {
      SEGMENT_ENDPOINT_API_KEYS: 'k',
    });
    const send = async (body: string, headers: Record<string, string>) =>
      (await fetch(run.url, { method: 'POST', headers: { ...segmentHeaders('k'), ...headers }, body }))
        .status;
    const sign = (secret: string, text: string) => createHmac('sha1', secret).update(text).digest('hex');
    const one = JSON.stringify(trackEvent());
    assert.equal(await send(one, { 'x-signature': sign('from-file', one) }), 200);
    assert.equal(await send(one, { 'x-signature': sign('from-file\n', one) }), 401);
    assert.equal(await send(one, {}), 401);
    // --signature-legacy-batch: Segment's legacy signing of a batch, by its first event, is accepted.
    const batch = [trackEvent(), trackEvent()];
    assert.equal(
      await send(JSON.stringify(batch), { 'x-signature': sign('from-file', JSON.stringify(batch[0])) }),
      200,
    );
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
    assert.doesNotMatch(run.stderr(), /from-file/);
  });

  test('flags fall back to environment variables', async () => {
    const out = join(dir, 'env-out');
    const run = await startCli([], {
      SEGMENT_ENDPOINT_HTTP: '1',
      SEGMENT_ENDPOINT_HOST: '127.0.0.1',
      SEGMENT_ENDPOINT_PORT: '0',
      SEGMENT_ENDPOINT_PATH: '/segment',
      SEGMENT_ENDPOINT_OUT: out,
      SEGMENT_ENDPOINT_MAX_BODY_BYTES: '300',
      SEGMENT_API_KEYS: 'env-key',
    });
    assert.match(run.url, /^http:\/\/127\.0\.0\.1:\d+\/segment$/);
    const send = (body: unknown) =>
      fetch(run.url, { method: 'POST', headers: segmentHeaders('env-key'), body: JSON.stringify(body) });
    assert.equal((await send({ type: 'identify', userId: 'u1' })).status, 200);
    assert.equal((await send(trackEvent({ pad: 'x'.repeat(300) }))).status, 413);
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
    assert.equal(storedEvents(out).length, 1);
  });

  // What state an exception nothing caught leaves behind cannot be known: the process logs it and exits
  // non-zero, for the process manager to restart it.
  // The timeout only bounds a failure: a process that keeps serving would never exit.
  test('an exception thrown from a handler timer, or a rejection nobody awaits: logged, then exit 1', {
    timeout: 60_000,
  }, async (t) => {
    const cases: Array<[string, string, RegExp]> = [
      [
        'throw-later',
        "setTimeout(() => { throw new Error('thrown from a timer'); }, 0)",
        /uncaught exception/,
      ],
      ['reject-later', "Promise.reject(new Error('rejected, never awaited'))", /unhandled rejection/],
    ];
    for (const [name, stray, msg] of cases) {
      const handlers = join(dir, `${name}.mjs`);
      writeFileSync(handlers, `export default { track: () => { ${stray}; } };\n`);
      const run = await startCli([...httpFlags('k1'), '--handlers', handlers]);
      t.signal.addEventListener('abort', () => run.child.kill('SIGKILL'));
      const send = fetch(run.url, {
        method: 'POST',
        headers: segmentHeaders('k1'),
        body: JSON.stringify(trackEvent()),
      });
      // The answer may or may not leave before the process ends; the exit is what is tested.
      await send.catch(() => undefined);
      assert.equal(await run.exit, 1, name);
      const fatal = run
        .stderr()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { level: number; msg: string; err?: { message: string } })
        .find((line) => msg.test(line.msg));
      assert.ok(fatal !== undefined, `${name}: ${run.stderr()}`);
      assert.equal(fatal.level, 50, 'error level');
      assert.match(fatal.err?.message ?? '', /thrown from a timer|rejected, never awaited/);
    }
  });

  test('the built dist/cli.js runs with nothing but node', async () => {
    assert.ok(existsSync(BUILT[0] as string), 'dist/cli.js is missing: run `make build` (make test does)');
    const run = await startCli(
      [...tlsArgs(), '--api-key', 'dev-key', '--out', join(dir, 'dist-out')],
      {},
      BUILT,
    );
    const agent = keepAliveAgent(cert);
    const res = await httpsCall(agent, run.url, { body: trackEvent(), headers: segmentHeaders('dev-key') });
    assert.equal(res.status, 200);
    agent.destroy();
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
    assert.equal(storedEvents(join(dir, 'dist-out')).length, 1);
  });
});

describe('key specs', () => {
  test('KEY and KEY:type,type', () => {
    assert.deepEqual(parseKeySpec('abc', '--api-key'), { key: 'abc' });
    assert.deepEqual(parseKeySpec('abc:track,Identify', '--api-key'), {
      key: 'abc',
      types: ['track', 'identify'],
    });
    assert.throws(() => parseKeySpec(':track', '--api-key'), UsageError);
    assert.throws(() => parseKeySpec('abc:buy', '--api-key'), UsageError);
  });

  test('a keys file: one KEY [types] per line, comments and blanks skipped, errors name the line', () => {
    assert.deepEqual(parseKeysFile('a\n# c\n\nb track,page # tail\r\n'), [
      { key: 'a' },
      { key: 'b', types: ['track', 'page'] },
    ]);
    assert.throws(() => parseKeysFile('a\nb track extra\n'), /line 2/);
    assert.deepEqual(parseKeysFile('k1 secret=s3cr3t\nk2 track secret=x\n'), [
      { key: 'k1', signatureSecret: 's3cr3t' },
      { key: 'k2', types: ['track'], signatureSecret: 'x' },
    ]);
    assert.throws(() => parseKeysFile('k secret=\n'), /line 1/);
    assert.throws(() => parseKeysFile('k secret=a secret=b\n'), /line 1/);
    assert.throws(() => parseKeysFile('a:b\n'), /line 1/);
  });

  test('a "#" starts a comment only where a token would start: a secret may hold one', () => {
    assert.deepEqual(parseKeysFile('k1 secret=ab#cd\nk2 #track\n#k3\n'), [
      { key: 'k1', signatureSecret: 'ab#cd' },
      { key: 'k2' },
    ]);
  });

  test('a key given twice over is refused, wherever it was given: one would silently lose its limits', () => {
    const keys = join(mkdtempSync(join(tmpdir(), 'segment-endpoint-keys-')), 'keys');
    writeFileSync(keys, 'k1 track secret=S3cr3t\n');
    const refused = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      assert.throws(
        () => configOf(args, env),
        (err: Error) => {
          assert.ok(err instanceof UsageError);
          assert.match(err.message, /given twice/);
          assert.doesNotMatch(err.message, /k1|S3cr3t/, 'the key and its secret are not repeated');
          return true;
        },
      );
    refused(['--api-key', 'k1:track', '--api-key', 'k1']);
    refused(['--api-keys-file', keys], { SEGMENT_ENDPOINT_API_KEYS: 'k1' });
    refused(['--api-keys-file', keys, '--api-key', 'k1']);
    // The same key, saying the same, twice (both variables set during a migration to the new name).
    const both = { SEGMENT_ENDPOINT_API_KEYS: 'k1,k2', SEGMENT_API_KEYS: 'k2,k1' };
    assert.deepEqual([...(configOf([], both).options.apiKeys ?? [])], [{ key: 'k1' }, { key: 'k2' }]);
    rmSync(dirname(keys), { recursive: true, force: true });
  });
});

describe('flags and variables that say one thing', () => {
  test('a flag given twice is refused, not the last one taken; --api-key may repeat', () => {
    for (const args of [
      ['--port', '1', '--port', '2'],
      ['--out', 'one', '--out', 'two'],
      ['--signature-secret', 'first', '--signature-secret', 'second'],
      ['--access-log', '--access-log'],
    ]) {
      assert.throws(() => configOf(['--api-key', 'k', ...args]), /given twice/, args.join(' '));
    }
    assert.equal([...(configOf(['--api-key', 'a', '--api-key', 'b']).options.apiKeys ?? [])].length, 2);
  });

  test("a number out of its bounds is refused by its flag, in the flag's unit", () => {
    const refused = (args: string[], message: RegExp) =>
      assert.throws(
        () => configOf(['--api-key', 'k', ...args]),
        (err: Error) => {
          assert.ok(err instanceof UsageError, err.message);
          assert.match(err.message, message);
          return true;
        },
      );
    refused(['--port', '70000'], /^--port must be from 0 to 65535, not 70000$/);
    refused(
      ['--shutdown-timeout', '99999999'],
      /^--shutdown-timeout must be from 0 to [\d.]+ seconds, not 99999999$/,
    );
    refused(['--idempotency-ttl', '0.0001'], /^--idempotency-ttl must be from 0.001 to .* seconds, not 0$/);
  });

  test("the library's own checks of an option are said of its flag, with the hint", async () => {
    const run = spawnClean(process.execPath, [...CLI_SOURCE, ...httpFlags('k'), '--path', 'nopath']);
    assert.equal(await run.exit, 1);
    assert.match(run.stderr(), /^segment-endpoint: --path must [^\n]*\nTry 'segment-endpoint --help'\.\n$/);
  });

  test('a switch variable is 1/true/yes/on or 0/false/no/off (any case), else refused', () => {
    const log = (value: string) => configOf(['--api-key', 'k'], { SEGMENT_ENDPOINT_ACCESS_LOG: value });
    for (const on of ['1', 'true', 'YES', 'on']) assert.equal(log(on).options.accessLog, true, on);
    for (const off of ['0', 'false', 'No', 'off', '']) assert.notEqual(log(off).options.accessLog, true, off);
    for (const bad of ['2', 'enabled', 'y']) {
      assert.throws(() => log(bad), /SEGMENT_ENDPOINT_ACCESS_LOG must be/, bad);
    }
  });
});

/** parseConfig for a plain-HTTP invocation (nothing to read from disk), as a config. */
function configOf(args: string[], env: NodeJS.ProcessEnv = {}): CliConfig {
  const config = parseConfig(['--http', ...args], env);
  assert.equal(typeof config, 'object');
  return config as CliConfig;
}

describe('Segment legacy batch signing is opt-in', () => {
  test('off by default; on with --signature-legacy-batch or SEGMENT_ENDPOINT_SIGNATURE_LEGACY_BATCH', () => {
    assert.equal(configOf(['--api-key', 'k']).options.signatureLegacyBatch, false);
    assert.equal(configOf(['--api-key', 'k', '--signature-legacy-batch']).options.signatureLegacyBatch, true);
    const env = { SEGMENT_ENDPOINT_SIGNATURE_LEGACY_BATCH: '1' };
    assert.equal(configOf(['--api-key', 'k'], env).options.signatureLegacyBatch, true);
  });
});

describe('--idempotency-max-entries 0', () => {
  test('turns duplicate suppression off through the library option of the same name', () => {
    const config = configOf(['--api-key', 'k', '--idempotency-max-entries', '0', '--idempotency-ttl', '60']);
    assert.deepEqual(config.options.idempotency, { maxEntries: 0, ttlMs: 60_000 });
    const resolved = resolveHandlerOptions({ handlers: {}, ...config.options, log: silentLogger });
    assert.equal(resolved.idempotency, undefined, 'no duplicate filter, as with idempotency: false');
  });
});

// Flags are visible to every user of the host in `ps` (/proc/PID/cmdline); files and environment
// variables are not.
describe('secrets kept off the command line', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-secrets-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };

  test('--signature-secret-file: exactly one trailing newline is not part of the secret', () => {
    const cases: Array<[string, string]> = [
      ['s3cret', 's3cret'],
      ['s3cret\n', 's3cret'],
      ['s3cret\r\n', 's3cret'],
      ['s3cret\n\n', 's3cret\n'],
      [' s3 cret \n', ' s3 cret '],
    ];
    cases.forEach(([text, secret], i) => {
      const path = file(`secret-${i}`, text);
      const config = configOf(['--api-key', 'k', '--signature-secret-file', path]);
      assert.equal(config.options.signatureSecret, secret, JSON.stringify(text));
    });
  });

  test('SEGMENT_ENDPOINT_SIGNATURE_SECRET_FILE names the file too', () => {
    const path = file('env-secret', 'from-env-file\n');
    const config = configOf(['--api-key', 'k'], { SEGMENT_ENDPOINT_SIGNATURE_SECRET_FILE: path });
    assert.equal(config.options.signatureSecret, 'from-env-file');
  });

  test('an empty or unreadable secret file, or a secret given twice, is a usage error', () => {
    const both = file('both', 'x\n');
    const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
      [['--signature-secret-file', file('empty', '')], {}, /empty/],
      [['--signature-secret-file', file('newline', '\n')], {}, /empty/],
      [['--signature-secret-file', file('crlf', '\r\n')], {}, /empty/],
      [['--signature-secret-file', join(dir, 'missing')], {}, /cannot read/],
      [['--signature-secret-file', both, '--signature-secret', 'y'], {}, /one of/],
      [['--signature-secret-file', both], { SEGMENT_ENDPOINT_SIGNATURE_SECRET: 'y' }, /one of/],
    ];
    for (const [args, env, message] of cases) {
      assert.throws(() => parseConfig(['--http', '--api-key', 'k', ...args], env), UsageError);
      assert.throws(() => parseConfig(['--http', '--api-key', 'k', ...args], env), message);
    }
  });

  test('API keys from SEGMENT_ENDPOINT_API_KEYS, and still from SEGMENT_API_KEYS', () => {
    const keys = (env: NodeJS.ProcessEnv) =>
      (configOf([], env).options.apiKeys as ApiKeySpec[]).map((spec) => spec.key);
    assert.deepEqual(keys({ SEGMENT_ENDPOINT_API_KEYS: 'a, b,' }), ['a', 'b']);
    assert.deepEqual(keys({ SEGMENT_API_KEYS: 'c' }), ['c']);
    assert.deepEqual(keys({ SEGMENT_ENDPOINT_API_KEYS: 'a', SEGMENT_API_KEYS: 'c' }), ['a', 'c']);
    assert.throws(() => parseConfig(['--http'], { SEGMENT_ENDPOINT_API_KEYS: ' , ' }), /no API key/);
  });

  test('the usage text names the file and environment variable of each secret', async () => {
    const { usage } = await import('../src/config.ts');
    for (const name of [
      '--signature-secret-file',
      'SEGMENT_ENDPOINT_SIGNATURE_SECRET_FILE',
      'SEGMENT_ENDPOINT_API_KEYS',
      '--api-keys-file',
    ]) {
      assert.ok(usage().includes(name), name);
    }
  });
});
