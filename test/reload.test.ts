import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect } from 'node:tls';
import { httpsCall, keepAliveAgent, segmentHeaders, trackEvent } from './helpers.ts';

const ROOT = join(import.meta.dirname, '..');

function makeCert(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=localhost/O=${name}`,
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

/** The fingerprint of the certificate a fresh TLS connection is offered. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

test('SIGHUP reloads the certificate for new connections without dropping open ones; a bad pair is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-reload-'));
  try {
    const first = makeCert(dir, 'first');
    const second = makeCert(dir, 'second');
    const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
    writeFileSync(live.cert, readFileSync(first.cert));
    writeFileSync(live.key, readFileSync(first.key));
    const fingerprint = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;

    const child = spawn(
      process.execPath,
      [
        '--conditions=segment-endpoint-source',
        '--import',
        'tsx',
        join(ROOT, 'src', 'cli.ts'),
        '--cert',
        live.cert,
        '--key',
        live.key,
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--api-key',
        'k',
        '--out',
        join(dir, 'out'),
      ],
      { cwd: ROOT },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    const exit = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    const waitFor = async (re: RegExp, text: () => string) => {
      for (let i = 0; i < 200 && !re.test(text()); i++) await new Promise((r) => setTimeout(r, 25));
      assert.match(text(), re);
    };
    await waitFor(/listening on/, () => stdout);
    const url = /listening on (\S+)/.exec(stdout)?.[1] as string;
    const port = Number(new URL(url).port);
    assert.equal(await servedFingerprint(port), fingerprint(first.cert));

    // An open keep-alive connection, made before the reload.
    const agent = keepAliveAgent(readFileSync(first.cert));
    const before = await httpsCall(agent, url, { body: trackEvent(), headers: segmentHeaders('k') });
    assert.equal(before.status, 200);

    writeFileSync(live.cert, readFileSync(second.cert));
    writeFileSync(live.key, readFileSync(second.key));
    child.kill('SIGHUP');
    await waitFor(/certificate reloaded/, () => stderr);
    assert.equal(await servedFingerprint(port), fingerprint(second.cert));
    const after = await httpsCall(agent, url, { body: trackEvent(), headers: segmentHeaders('k') });
    assert.equal(after.status, 200);
    assert.equal(after.localPort, before.localPort, 'the open connection was kept');

    // A key that does not match the certificate: refused, the current pair stays.
    writeFileSync(live.key, readFileSync(first.key));
    child.kill('SIGHUP');
    await waitFor(/certificate reload failed/, () => stderr);
    assert.equal(await servedFingerprint(port), fingerprint(second.cert));
    assert.doesNotMatch(stderr, /PRIVATE KEY/);

    agent.destroy();
    child.kill('SIGTERM');
    assert.equal(await exit, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
