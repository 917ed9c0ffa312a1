// --workers 2 shares the TLS session ticket keys: a session one worker issued resumes on the other, in
// TLS 1.2 and 1.3, after SIGHUP has every worker reload its certificate, and on a worker started after
// the keys were rotated. Round-robin hands consecutive connections to alternate workers, so keys of a
// worker's own fail about half. (Before any reload or rotation node:cluster itself gives every worker
// the first one's keys: only the SIGHUP and rotation steps tell whether the primary's keys are used.)
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect, type SecureVersion } from 'node:tls';
import { pathToFileURL } from 'node:url';
import { testCert } from '../helpers-cert.ts';
import { parseRaw } from '../helpers-clients.ts';
import { waitFor, waitUntil } from '../helpers-wait.ts';
import { cleanup, type Endpoint, startEndpoint, stopCleanly, tlsFlags } from './harness.ts';

const VERSIONS: SecureVersion[] = ['TLSv1.2', 'TLSv1.3'];
const RESUMPTIONS = 8;
const AFTER_RELOAD = 6;

interface Visit {
  readonly status: number;
  readonly reused: boolean;
  readonly protocol: string | null;
  /** The last session the server gave on this connection (TLS 1.3 sends its tickets after the handshake). */
  readonly session: Buffer | undefined;
}

/** One connection of `version`, resuming `session` if given, carrying a GET /health to its answer. */
function visit(ep: Endpoint, version: SecureVersion, session?: Buffer): Promise<Visit> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port: ep.port,
      ca: testCert().cert,
      servername: 'localhost',
      minVersion: version,
      maxVersion: version,
      session,
    });
    let last: Buffer | undefined;
    let text = '';
    // Read at the handshake: once the socket has closed, both say nothing.
    let reused = false;
    let protocol: string | null = null;
    socket.on('session', (s: Buffer) => {
      last = s;
    });
    socket.on('secureConnect', () => {
      reused = socket.isSessionReused();
      protocol = socket.getProtocol();
      socket.write('GET /health HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n');
    });
    socket.on('data', (c: Buffer) => {
      text += c.toString();
    });
    socket.on('error', reject);
    socket.on('close', () =>
      resolve({
        status: parseRaw(text).status,
        reused,
        protocol,
        session: last,
      }),
    );
  });
}

/**
 * A session from a first connection of `version` (or `session`, if given) resumed on `count` more,
 * one after another: each answers GET /health 200 over `version` on a resumed session.
 */
async function assertResumes(ep: Endpoint, version: SecureVersion, count: number, session?: Buffer) {
  const first = session === undefined ? await visit(ep, version) : undefined;
  assert.equal(first?.status ?? 200, 200);
  const resumed = session ?? first?.session;
  assert.ok(resumed !== undefined, 'the server gave a session');
  const visits: Array<Omit<Visit, 'session'>> = [];
  for (let i = 0; i < count; i++) {
    const { status, reused, protocol } = await visit(ep, version, resumed);
    visits.push({ status, reused, protocol });
  }
  assert.deepEqual(visits, Array(count).fill({ status: 200, reused: true, protocol: version }));
  return resumed;
}

/** The JSON log lines of worker `n` whose message is `msg`. */
function logged(ep: Endpoint, n: number, msg: string): Array<{ pid?: number }> {
  const lines = ep
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'));
  const entries = lines.map((line) => JSON.parse(line) as { msg?: string; worker?: number; pid?: number });
  return entries.filter((e) => e.msg === msg && e.worker === n);
}

/** A 2-worker endpoint on a temp directory removed after the test; `env` for the process. */
async function twoWorkers(t: { after(fn: () => Promise<void>): void }, env: NodeJS.ProcessEnv = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-cluster-tls-'));
  const endpoints: Endpoint[] = [];
  t.after(cleanup(dir, endpoints));
  const flags = ['--workers', '2', ...tlsFlags(dir), '--api-key', 'dev-key', '--out', join(dir, 'store')];
  const ep = await startEndpoint(flags, env);
  endpoints.push(ep);
  return { dir, ep };
}

test('TLS sessions resume on every worker, before and after SIGHUP', async (t) => {
  const { ep } = await twoWorkers(t);
  const sessions = new Map<SecureVersion, Buffer>();
  for (const version of VERSIONS) {
    await t.test(`${version}: a session resumes on ${RESUMPTIONS} new connections`, async () => {
      sessions.set(version, await assertResumes(ep, version, RESUMPTIONS));
    });
  }
  ep.child.kill('SIGHUP');
  await waitUntil(
    () => [1, 2].every((n) => logged(ep, n, 'certificate reloaded').length > 0),
    () => `"certificate reloaded" of workers 1 and 2 in:\n${ep.output()}`,
    15_000,
  );
  for (const version of VERSIONS) {
    await t.test(`${version}: a session from before SIGHUP resumes on ${AFTER_RELOAD}`, async () => {
      const session = sessions.get(version);
      assert.ok(session !== undefined, 'a session was taken before the reload');
      await assertResumes(ep, version, AFTER_RELOAD, session);
    });
  }
  await stopCleanly(ep);
});

test('after the ticket keys are rotated, a replaced worker resumes the sessions of the others', async (t) => {
  // The primary rotates its keys every 12 h: a preload makes that rotation run on SIGUSR2 instead.
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-cluster-rotate-'));
  t.after(cleanup(dir, []));
  const preload = join(dir, 'rotate-on-sigusr2.mjs');
  writeFileSync(
    preload,
    `const setIntervalOriginal = globalThis.setInterval;
globalThis.setInterval = function (fn, ms, ...args) {
  if (ms === 12 * 60 * 60 * 1000) process.on('SIGUSR2', () => fn(...args));
  return setIntervalOriginal.call(this, fn, ms, ...args);
};
`,
  );
  const { ep } = await twoWorkers(t, { NODE_OPTIONS: `--import ${pathToFileURL(preload).href}` });
  const [pid] = logged(ep, 1, 'worker listening').map((e) => e.pid);
  assert.ok(pid !== undefined, ep.output());
  ep.child.kill('SIGUSR2');
  await waitFor(ep.output, /TLS session ticket keys rotated/, 15_000);
  for (const version of VERSIONS) await assertResumes(ep, version, RESUMPTIONS);

  process.kill(pid, 'SIGKILL');
  await waitUntil(
    () => logged(ep, 1, 'worker listening').length === 2,
    () => `worker 1 listening again in:\n${ep.output()}`,
    15_000,
  );
  for (const version of VERSIONS) {
    await t.test(`${version}: a session resumes on ${RESUMPTIONS}, the new worker's included`, async () => {
      await assertResumes(ep, version, RESUMPTIONS);
    });
  }
  await stopCleanly(ep);
});
