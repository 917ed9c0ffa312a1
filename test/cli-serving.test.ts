import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { BUILT, commandDir, startCli, storedEvents } from './cli-harness.ts';
import { segmentHeaders, trackEvent } from './helpers.ts';
import { testCert } from './helpers-cert.ts';
import { httpsCall, keepAliveAgent } from './helpers-clients.ts';
import { CLI, httpFlags, ROOT, spawnClean } from './helpers-spawn.ts';
import { waitFor } from './helpers-wait.ts';

// The command started and serving: HTTPS end to end with the store kept across a restart, signals (SIGTERM
// drains, SIGHUP while starting or over plain HTTP), an exception nothing caught, and the built dist/cli.js.

describe('the segment-endpoint command', () => {
  let dir: string;
  let certFile: string;
  let keyFile: string;
  const { cert } = testCert();

  before(() => {
    ({ dir, certFile, keyFile } = commandDir());
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const tlsArgs = () => ['--cert', certFile, '--key', keyFile, '--host', '127.0.0.1', '--port', '0'];

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
      ...CLI,
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

  test("a process warning (a dependency's, a handlers module's) is a JSON log line, not plain text among them", async () => {
    // pg warns so about `sslmode=require` in a --postgres URL: Node's own printer would put lines starting
    // "(node:PID) Warning:" between the JSON ones, which a log shipper parsing JSON drops or garbles.
    const handlers = join(dir, 'warns.mjs');
    writeFileSync(
      handlers,
      "process.emitWarning('this module warns', { code: 'SE_TEST' });\nexport default { track() {} };\n",
    );
    const run = await startCli([...httpFlags('k1'), '--handlers', handlers]);
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
    const lines = run
      .stderr()
      .split('\n')
      .filter((line) => line !== '');
    assert.deepEqual(
      lines.filter((line) => !line.startsWith('{')),
      [],
      'every line is JSON',
    );
    const warned = lines.map((line) => JSON.parse(line)).find((line) => line.msg === 'this module warns');
    assert.ok(warned !== undefined, run.stderr());
    assert.equal(warned.level, 40);
    assert.equal(warned.code, 'SE_TEST');
    // NODE_NO_WARNINGS=1 silences them, as it silences Node's own printer.
    const silenced = await startCli([...httpFlags('k1'), '--handlers', handlers], { NODE_NO_WARNINGS: '1' });
    silenced.child.kill('SIGTERM');
    assert.equal(await silenced.exit, 0);
    assert.doesNotMatch(silenced.stderr(), /this module warns/);
  });

  // What state an exception nothing caught leaves behind cannot be known: the process logs it and exits
  // non-zero, for the process manager to restart it.
  // The timeout only bounds a failure: a process that keeps serving would never exit.
  test('a log nobody reads any more (its pipe closed) does not take the process down: events still stored', async () => {
    // `segment-endpoint ... | log-shipper`, the shipper gone: each log line fails with EPIPE, which was an
    // uncaught exception (exit 1 at the next line, a drain cut short). Lines are lost; events are not.
    const out = join(dir, 'unread-log');
    const run = await startCli([...httpFlags('k1'), '--out', out, '--access-log']);
    run.child.stdout?.destroy();
    run.child.stderr?.destroy();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const res = await fetch(run.url, {
      method: 'POST',
      headers: segmentHeaders('k1'),
      body: JSON.stringify(trackEvent({ event: 'logged to nobody' })),
    });
    assert.equal(res.status, 200);
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0, 'drained and stopped');
    assert.deepEqual(
      storedEvents(out).map((record) => (record.event as { event: string }).event),
      ['logged to nobody'],
    );
  });

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

  test('the built dist/cli.js compiles its code with the code cache the build made for this node', async () => {
    // Imported, not run (argv[1] is not the CLI): the loader compiles the code and says what V8 made of
    // the cache. A cache missing, or refused (made by another node, under other flags), is not wrong, but
    // the build's own must serve the node that made it.
    const loader = pathToFileURL(BUILT[0] as string).href;
    const probe = spawnClean(process.execPath, [
      '--input-type=module',
      '-e',
      `const { script } = await import(${JSON.stringify(loader)}); console.log(JSON.stringify({ rejected: script.cachedDataRejected }));`,
    ]);
    assert.equal(await probe.exit, 0, probe.stderr());
    assert.deepEqual(JSON.parse(probe.stdout()), { rejected: false });
  });

  test('a code cache damaged past its header, or made for other code of the same length, is not used', async () => {
    // V8 checks of a cache only its header and the length of the code: given the rest damaged it stops the
    // process (a fatal error, SIGTRAP), and given another build's it runs that build's code.
    const pkg = join(dir, 'cache-pkg');
    rmSync(pkg, { recursive: true, force: true });
    // What the command needs of the package (dist/ also holds the ~100 MB single executable).
    for (const file of ['cli.js', 'cli-main.cjs', 'cli-main.v8cache', 'errors.js']) {
      cpSync(join(ROOT, 'dist', file), join(pkg, 'dist', file));
    }
    cpSync(join(ROOT, 'package.json'), join(pkg, 'package.json'));
    const cli = join(pkg, 'dist', 'cli.js');
    const version = async () => {
      const run = spawnClean(process.execPath, [cli, '--version']);
      assert.equal(await run.exit, 0, run.stderr());
      return run.stdout().trim();
    };
    const cache = join(pkg, 'dist', 'cli-main.v8cache');
    const good = readFileSync(cache);
    const damaged = Buffer.from(good);
    for (let i = damaged.length >> 1; i < (damaged.length >> 1) + 64; i++)
      damaged[i] = (damaged[i] as number) ^ 0xff;
    writeFileSync(cache, damaged);
    assert.match(await version(), /^\d+\.\d+\.\d+/);
    writeFileSync(cache, good);
    const code = join(pkg, 'dist', 'cli-main.cjs');
    const edited = readFileSync(code, 'utf8').replace('return pkg.version;', 'return pkg.versiom;');
    assert.notEqual(edited, readFileSync(code, 'utf8'));
    writeFileSync(code, edited);
    assert.equal(await version(), 'undefined', 'the edited code runs, not the cached');
  });

  test("the built CLI's code holds no character past Latin-1: V8 keeps it as a one-byte string", () => {
    // One en dash in a comment esbuild kept made the whole source, and the loader's wrapped copy, two-byte
    // strings: 1.3 MiB more of every process's memory, from its start.
    const code = readFileSync(join(ROOT, 'dist', 'cli-main.cjs'), 'utf8');
    const wide = [...code].filter((c) => (c.codePointAt(0) as number) > 0xff);
    assert.deepEqual(wide.slice(0, 5), [], 'scripts/bundle-cli.ts escapes them');
  });

  test('a stack trace of the built dist/cli.js names its lines, or the sources with --enable-source-maps', async () => {
    const handlers = join(dir, 'throwing-handlers.mjs');
    writeFileSync(handlers, 'export default { track() { return null.x; } };\n');
    const stackOf = async (entry: string[]) => {
      const run = await startCli([...httpFlags('k1'), '--handlers', handlers], {}, entry);
      const res = await fetch(run.url, {
        method: 'POST',
        headers: segmentHeaders('k1'),
        body: JSON.stringify(trackEvent()),
      });
      assert.equal(res.status, 500);
      const [, stack] = await waitFor(run.stderr, /"stack":"((?:[^"\\]|\\.)*)"/);
      run.child.kill('SIGTERM');
      assert.equal(await run.exit, 0);
      return JSON.parse(`"${stack}"`) as string;
    };
    // The frame of the dispatch that called the handler: its file and line, as node names it.
    const dispatchFrame = (stack: string) => /at Object\.dispatch \((.*?):(\d+):\d+\)/.exec(stack)?.slice(1);
    // By the package's path, wherever it is installed and wherever its cache was made.
    assert.equal(dispatchFrame(await stackOf([...BUILT]))?.[0], 'segment-endpoint/dist/cli-main.cjs');
    const mapped = dispatchFrame(await stackOf(['--enable-source-maps', ...BUILT]));
    assert.equal(mapped?.[0], join(ROOT, 'src', 'dispatch.ts'));
    const line = readFileSync(join(ROOT, 'src', 'dispatch.ts'), 'utf8').split('\n')[Number(mapped?.[1]) - 1];
    assert.match(
      line ?? '',
      /\(table\[type\] as AnyHandler\)\(event, ctx\)/,
      'the line that calls the handler',
    );
  });

  test("the built dist/cli.js answers a partner's errors, imported from the package, by their status and code", async (t) => {
    // A handlers module imports the error classes from the package (dist/index.js), as a partner's does:
    // the command must know them for its own, whatever way it was built.
    const handlers = join(dir, 'package-errors.mjs');
    // From the package's main entry and from `segment-endpoint/errors`, which loads nothing else.
    const pkg = pathToFileURL(join(ROOT, 'dist', 'index.js')).href;
    const errors = pathToFileURL(join(ROOT, 'dist', 'errors.js')).href;
    writeFileSync(
      handlers,
      `import { RetryError } from ${JSON.stringify(pkg)};
import { ValidationError } from ${JSON.stringify(errors)};
export default {
  track: () => { throw new RetryError('the CRM is down'); },
  identify: () => { throw new ValidationError('an identify needs an email'); },
};
`,
    );
    const run = await startCli([...httpFlags('k1'), '--handlers', handlers], {}, BUILT);
    t.after(() => run.child.kill('SIGKILL'));
    const send = async (event: Record<string, unknown>) => {
      const res = await fetch(run.url, {
        method: 'POST',
        headers: segmentHeaders('k1'),
        body: JSON.stringify(event),
      });
      return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() };
    };
    assert.deepEqual(await send(trackEvent()), {
      status: 503,
      retryAfter: '1',
      body: { code: 'SEG_RETRY', message: 'the CRM is down' },
    });
    const identify = { type: 'identify', userId: 'u1', messageId: 'm-identify-1' };
    assert.deepEqual(await send(identify), {
      status: 400,
      retryAfter: null,
      body: { code: 'SEG_INVALID_EVENT', message: 'an identify needs an email' },
    });
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
  });

  test('--out given with --handlers, where no store is kept: said at start, not silently unused', async () => {
    const handlers = join(dir, 'no-store-handlers.mjs');
    writeFileSync(handlers, 'export default { track() {} };\n');
    const run = await startCli([...httpFlags('k1'), '--handlers', handlers, '--out', join(dir, 'unused')]);
    await waitFor(run.stderr, /"msg":"--out is not used \(handlers from [^"]*no-store-handlers.mjs\)"/);
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
  });
});
