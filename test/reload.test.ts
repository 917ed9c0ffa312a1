import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac, X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { segmentHeaders, trackEvent } from './helpers.ts';
import { makeCert, makeExpiredCert, makeSignedCert, servedChain, servedFingerprint } from './helpers-cert.ts';
import { httpsCall, keepAliveAgent } from './helpers-clients.ts';
import { CLI, httpFlags, spawnClean } from './helpers-spawn.ts';
import { eventually, waitFor, waitUntil } from './helpers-wait.ts';

test('SIGHUP reloads the certificate for new connections without dropping open ones; a bad pair is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-reload-'));
  try {
    const first = makeCert(dir, 'first');
    const second = makeCert(dir, 'second');
    const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
    writeFileSync(live.cert, readFileSync(first.cert));
    writeFileSync(live.key, readFileSync(first.key));
    const fingerprint = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;

    const run = spawnClean(process.execPath, [
      ...CLI,
      ...['--cert', live.cert, '--key', live.key, '--host', '127.0.0.1', '--port', '0'],
      ...['--api-key', 'k', '--out', join(dir, 'out')],
    ]);
    const url = (await waitFor(run.stdout, /listening on (\S+)/))[1] as string;
    const port = Number(new URL(url).port);
    assert.equal(await servedFingerprint(port), fingerprint(first.cert));

    // An open keep-alive connection, made before the reload.
    const agent = keepAliveAgent(readFileSync(first.cert));
    const before = await httpsCall(agent, url, { body: trackEvent(), headers: segmentHeaders('k') });
    assert.equal(before.status, 200);

    writeFileSync(live.cert, readFileSync(second.cert));
    writeFileSync(live.key, readFileSync(second.key));
    run.child.kill('SIGHUP');
    await waitFor(run.stderr, /certificate reloaded/);
    assert.equal(await servedFingerprint(port), fingerprint(second.cert));
    const after = await httpsCall(agent, url, { body: trackEvent(), headers: segmentHeaders('k') });
    assert.equal(after.status, 200);
    assert.equal(after.localPort, before.localPort, 'the open connection was kept');

    // A key that does not match the certificate: refused, the current pair stays.
    writeFileSync(live.key, readFileSync(first.key));
    run.child.kill('SIGHUP');
    await waitFor(run.stderr, /certificate reload failed/);
    assert.equal(await servedFingerprint(port), fingerprint(second.cert));
    assert.doesNotMatch(run.stderr(), /PRIVATE KEY/);

    // An expired certificate (a renewal that failed, the old file copied back): served, it would fail
    // every sender's handshake. Refused, the current pair stays.
    const expired = makeExpiredCert(mkdtempSync(join(dir, 'expired-')));
    writeFileSync(live.cert, readFileSync(expired.cert));
    writeFileSync(live.key, readFileSync(expired.key));
    run.child.kill('SIGHUP');
    await waitFor(run.stderr, /"reason":"--cert [^"]* expired on [^\n]*certificate reload failed/);
    assert.equal(await servedFingerprint(port), fingerprint(second.cert));

    // A certificate that became a named pipe nobody writes to (some secrets tools deliver files so): a
    // read of it would block the process for good, every request and signal with it. Refused at once.
    rmSync(live.cert);
    execFileSync('mkfifo', [live.cert]);
    run.child.kill('SIGHUP');
    await waitFor(run.stderr, /"reason":"not a regular file[^\n]*certificate reload failed/);
    assert.equal(await servedFingerprint(port), fingerprint(second.cert));

    agent.destroy();
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the certificates sent are those of --cert, none from a store of trusted ones, at start and after a SIGHUP', async () => {
  // Node builds a server's store of trusted certificates (its ~140 roots, and NODE_EXTRA_CA_CERTS's) unless
  // told its own, ~30 ms of a start, and then sends from it the issuer that --cert left out.
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-chain-'));
  const signed = makeSignedCert(dir);
  const run = spawnClean(
    process.execPath,
    [
      ...CLI,
      ...['--cert', signed.cert, '--key', signed.key, '--host', '127.0.0.1', '--port', '0'],
      ...['--api-key', 'k', '--out', join(dir, 'out')],
    ],
    undefined,
    { NODE_EXTRA_CA_CERTS: signed.ca },
  );
  try {
    const port = Number(new URL((await waitFor(run.stdout, /listening on (\S+)/))[1] as string).port);
    assert.deepEqual(await servedChain(port), ['localhost']);
    run.child.kill('SIGHUP');
    await waitFor(run.stderr, /certificate reloaded/);
    assert.deepEqual(await servedChain(port), ['localhost']);
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
  } finally {
    run.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

/** An event sent with `key` on a connection of its own (with --workers, any worker may take it): its status. */
function post(url: string, key: string, secret?: string): Promise<number> {
  const body = JSON.stringify(trackEvent());
  const signature =
    secret === undefined ? {} : { 'x-signature': createHmac('sha1', secret).update(body).digest('hex') };
  return new Promise((resolve, reject) => {
    const headers = { ...segmentHeaders(key), ...signature };
    const req = request(url, { method: 'POST', agent: false, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** The statuses of `times` events sent with `key` (signed under `secret`), each on its own connection. */
const statuses = async (url: string, key: string, times: number, secret?: string) =>
  [...new Set(await Promise.all(Array.from({ length: times }, () => post(url, key, secret))))].sort();

/**
 * The CLI over plain HTTP with `--api-key key`, `--workers workers` and `flag` naming a file (mode 0600)
 * that holds `text`, in a directory of its own; `done()` stops it (a failed assertion leaves it serving)
 * and removes the directory.
 */
async function servingWithFile(flag: string, text: string, key: string, workers: string) {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-reload-file-'));
  const file = join(dir, 'file');
  writeFileSync(file, text, { mode: 0o600 });
  const run = spawnClean(process.execPath, [
    ...CLI,
    ...httpFlags(key),
    ...[flag, file, '--workers', workers, '--out', join(dir, 'out')],
  ]);
  const done = () => {
    run.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const url = (await waitFor(run.stdout, /listening on (\S+)/))[1] as string;
    return { dir, file, run, url, times: Number(workers) * 4, done };
  } catch (err) {
    done();
    throw err;
  }
}

for (const workers of ['1', '2']) {
  test(`SIGHUP reads --signature-secret-file again (--workers ${workers}): a secret rotated in the README's steps, nothing signed under the one in use refused`, async () => {
    // Read at start only, a rotated secret took a restart, and every event Segment signed under the new
    // secret before it was a final 401.
    const {
      file: secretFile,
      run,
      url,
      times,
      done,
    } = await servingWithFile('--signature-secret-file', 'first-secret\n', 'k', workers);
    try {
      const reloaded = async (count: number) => {
        const said = new RegExp(`("msg":"signature secret reloaded"[\\s\\S]*){${count}}`);
        await waitFor(run.stderr, said);
        // With --workers, each worker says it too.
        if (workers !== '1')
          await waitFor(
            run.stderr,
            new RegExp(`("worker":\\d[^\\n]*signature secret reloaded[\\s\\S]*){${2 * count}}`),
          );
      };
      assert.deepEqual(await statuses(url, 'k', times, 'first-secret'), [200]);
      assert.deepEqual(await statuses(url, 'k', times, 'second-secret'), [401]);

      // 1. The new beside the old.
      writeFileSync(secretFile, 'first-secret\nsecond-secret\n');
      run.child.kill('SIGHUP');
      await reloaded(1);
      assert.deepEqual(await statuses(url, 'k', times, 'first-secret'), [200]);
      assert.deepEqual(await statuses(url, 'k', times, 'second-secret'), [200]);
      // 3. The old taken out.
      writeFileSync(secretFile, 'second-secret\n');
      run.child.kill('SIGHUP');
      await reloaded(2);
      assert.deepEqual(await statuses(url, 'k', times, 'first-secret'), [401]);
      assert.deepEqual(await statuses(url, 'k', times, 'second-secret'), [200]);

      // A file emptied (a template that lost its value): refused and logged, the secret in use kept.
      writeFileSync(secretFile, '\n');
      run.child.kill('SIGHUP');
      await waitFor(
        run.stderr,
        /"reason":"--signature-secret-file: \S+ holds no secret"[^\n]*signature secret reload failed/,
      );
      assert.deepEqual(await statuses(url, 'k', times, 'second-secret'), [200]);
      assert.deepEqual(await statuses(url, 'k', times), [401]);
      assert.doesNotMatch(run.stderr(), /first-secret|second-secret/);

      run.child.kill('SIGTERM');
      assert.equal(await run.exit, 0);
    } finally {
      done();
    }
  });
}

for (const workers of ['1', '2']) {
  test(`SIGHUP reads --api-keys-file again (--workers ${workers}): a key added is served, one taken out refused, a bad file refused`, async () => {
    // A new customer's key took a restart. The keys of --api-key and the environment stay as they were.
    const served = await servingWithFile('--api-keys-file', 'first-key\n', 'flag-key', workers);
    const { dir, file: keysFile, run, url, times } = served;
    try {
      assert.deepEqual(await statuses(url, 'first-key', times), [200]);
      assert.deepEqual(await statuses(url, 'second-key', times), [401]);

      writeFileSync(keysFile, '# rotated\nsecond-key track\n');
      run.child.kill('SIGHUP');
      await waitFor(run.stderr, /API keys reloaded/);
      // Over plain HTTP there is no certificate: not said beside the keys, by any process.
      assert.doesNotMatch(run.stderr(), /no certificate to reload/);
      // With --workers, each worker too.
      if (workers !== '1') await waitFor(run.stderr, /("worker":\d[^\n]*API keys reloaded[\s\S]*){2}/);
      assert.deepEqual(await statuses(url, 'second-key', times), [200]);
      assert.deepEqual(await statuses(url, 'first-key', times), [401]);
      assert.deepEqual(await statuses(url, 'flag-key', times), [200]);

      // A line the file cannot hold: said by its line, never the key, and the keys served stay.
      writeFileSync(keysFile, 'third-key\nsecret-looking-key track bogus\n');
      run.child.kill('SIGHUP');
      await waitFor(run.stderr, /"reason":"--api-keys-file line 2: expected [^\n]*API keys reload failed/);
      assert.doesNotMatch(run.stderr(), /third-key|secret-looking-key/);
      assert.deepEqual(await statuses(url, 'second-key', times), [200]);
      assert.deepEqual(await statuses(url, 'third-key', times), [401]);

      // Replaced by a file written under the default umask: said as at start, by one process, never a key.
      const beside = join(dir, 'keys.new');
      writeFileSync(beside, 'fourth-key\n');
      chmodSync(beside, 0o644);
      renameSync(beside, keysFile);
      run.child.kill('SIGHUP');
      await waitFor(run.stderr, /--api-keys-file \S+ is readable by every user of this host \(mode 0644\)/);
      await eventually(async () => (await statuses(url, 'fourth-key', times)).join() === '200', 'fourth-key');
      assert.equal(run.stderr().match(/is readable by every user/g)?.length, 1);
      assert.doesNotMatch(run.stderr(), /fourth-key/);

      run.child.kill('SIGTERM');
      assert.equal(await run.exit, 0);
    } finally {
      served.done();
    }
  });
}

test('--workers: a SIGHUP that loads the keys and not the certificate (or the other way) has the workers say what they loaded, no more', async () => {
  // The primary refused one of the two and loaded the other: its workers said they had reloaded both,
  // "API keys reloaded" beside the primary's "API keys reload failed", of a file that was never loaded.
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-keys-reload-'));
  let run: ReturnType<typeof spawnClean> | undefined;
  try {
    const first = makeCert(dir, 'first');
    const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key'), keys: join(dir, 'keys') };
    writeFileSync(live.cert, readFileSync(first.cert));
    writeFileSync(live.key, readFileSync(first.key));
    writeFileSync(live.keys, 'first-key\n', { mode: 0o600 });
    run = spawnClean(process.execPath, [
      ...CLI,
      ...['--cert', live.cert, '--key', live.key, '--host', '127.0.0.1', '--port', '0'],
      ...['--api-keys-file', live.keys, '--workers', '2', '--out', join(dir, 'out')],
    ]);
    await waitFor(run.stdout, /listening on (\S+)/);
    const said = (what: RegExp) =>
      run
        ?.stderr()
        .split('\n')
        .filter((line) => what.test(line)).length ?? 0;
    const workersSaid = (what: string) => said(new RegExp(`"worker":\\d[^\\n]*"msg":"${what}"`));

    // The keys load, the certificate does not.
    writeFileSync(live.cert, 'not a certificate');
    writeFileSync(live.keys, 'second-key\n');
    run.child.kill('SIGHUP');
    await waitUntil(
      () => workersSaid('API keys reloaded') === 2,
      () => run?.stderr() ?? '',
    );
    assert.equal(workersSaid('certificate reloaded'), 0, run.stderr());

    // The certificate loads, the keys do not.
    writeFileSync(live.cert, readFileSync(first.cert));
    writeFileSync(live.keys, 'third-key bogus=1\n');
    run.child.kill('SIGHUP');
    await waitUntil(
      () => workersSaid('certificate reloaded') === 2,
      () => run?.stderr() ?? '',
    );
    // Both load: each worker says so, after what it said of the SIGHUP before.
    writeFileSync(live.keys, 'fourth-key\n');
    run.child.kill('SIGHUP');
    await waitUntil(
      () => workersSaid('certificate reloaded') === 4,
      () => run?.stderr() ?? '',
    );
    await waitUntil(
      () => workersSaid('API keys reloaded') >= 4,
      () => run?.stderr() ?? '',
    );
    assert.equal(workersSaid('API keys reloaded'), 4, run.stderr());
    assert.equal(said(/API keys reload failed/), 1, run.stderr());

    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
  } finally {
    run?.child.kill('SIGKILL'); // a failed assertion leaves it serving
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--workers: a keys file larger than one message piece reaches every worker whole, at start and on SIGHUP', async () => {
  // The primary sends a file to its workers in pieces of 1 Mi base64 characters (768 KiB): in one
  // message, 500,000 keys held every worker for ~0.4 s as it parsed and decoded them. Each piece must
  // join the next exactly: a key across a boundary, and the last one, are served by both workers.
  const keysOf = (tag: string) =>
    Array.from({ length: 50_000 }, (_, n) => `${tag}-key-${String(n).padStart(8, '0')}-${'x'.repeat(20)}`);
  /** The key whose line holds the first byte of the second piece. */
  const across = (keys: string[]) => {
    let end = 0;
    for (const key of keys) {
      end += key.length + 1;
      if (end > 768 * 1024) return key;
    }
    throw new Error('a file of one piece');
  };
  const first = keysOf('first');
  const served = await servingWithFile('--api-keys-file', `${first.join('\n')}\n`, 'flag-key', '2');
  const { file: keysFile, run, url, times } = served;
  try {
    assert.ok(statSync(keysFile).size > 2 * 768 * 1024, 'three pieces at least');
    for (const key of [first[0], across(first), first.at(-1)] as string[]) {
      assert.deepEqual(await statuses(url, key, times), [200], key);
    }
    const second = keysOf('second');
    writeFileSync(keysFile, `${second.join('\n')}\n`);
    run.child.kill('SIGHUP');
    await waitFor(run.stderr, /("worker":\d[^\n]*API keys reloaded[\s\S]*){2}/);
    for (const key of [second[0], across(second), second.at(-1)] as string[]) {
      assert.deepEqual(await statuses(url, key, times), [200], key);
    }
    assert.deepEqual(await statuses(url, first.at(-1) as string, times), [401]);
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
  } finally {
    served.done();
  }
});
