// Connections open at SIGTERM: a request whose headers arrive during the drain gets 503 SEG_DRAINING with
// Connection: close, a health check 503 draining, and a silent connection does not hold up the exit.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { segmentHeaders, trackEvent } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { parseRaw } from '../helpers-clients.ts';
import { waitFor } from '../helpers-wait.ts';
import { exitCode, GUARD_MS, untilDraining } from './drain-harness.ts';
import {
  cleanup,
  type Endpoint,
  health,
  readStore,
  recordFigures,
  startEndpoint,
  tlsFlags,
} from './harness.ts';

/**
 * Resolves once the server has read what was written to it so far: a health check on a connection of
 * its own goes through several turns of the server's event loop (accept, TLS handshake, the request),
 * and bytes written earlier on another connection are read in the first of them.
 */
async function caughtUp(ep: Endpoint): Promise<void> {
  assert.equal(await health(ep), 200);
}

/** A TLS connection to the endpoint that the test writes to by hand; `received` is all it got back. */
async function openConnection(ep: Endpoint): Promise<{ socket: TLSSocket; received: Promise<string> }> {
  const socket = connect({ host: '127.0.0.1', port: ep.port, ca: testCert().cert, servername: 'localhost' });
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  const received = new Promise<string>((done) => {
    socket.on('close', () => done(text));
    socket.on('error', () => done(text));
  });
  await new Promise((done) => socket.once('secureConnect', done));
  return { socket, received };
}

/** A POST of one event as Segment sends it, as raw HTTP/1.1. */
function rawEvent(messageId: string): string {
  const body = JSON.stringify(trackEvent({ messageId }));
  const headers = {
    host: 'localhost',
    ...segmentHeaders('dev-key'),
    'content-length': Buffer.byteLength(body),
  };
  const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  return `POST / HTTP/1.1\r\n${head.join('')}\r\n${body}`;
}

test('a request whose headers arrive during the drain gets 503 SEG_DRAINING with Connection: close', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-drain-late-'));
  const endpoints: Endpoint[] = [];
  t.after(cleanup(dir, endpoints));
  const out = join(dir, 'store');
  const ep = await startEndpoint([...tlsFlags(dir), '--api-key', 'dev-key', '--out', out]);
  endpoints.push(ep);
  assert.equal(await health(ep), 200);

  // Half a request line before the signal: the connection is not idle, so it stays open through
  // the start of the drain, and the request is complete only once draining has begun.
  const { socket, received } = await openConnection(ep);
  t.after(() => socket.destroy());
  const request = rawEvent('late-1');
  socket.write(request.slice(0, 10));
  await caughtUp(ep);
  const signalAt = Date.now();
  ep.child.kill('SIGTERM');
  await untilDraining(ep);
  socket.write(request.slice(10));
  const exited = await exitCode(ep);
  const exitMs = Date.now() - signalAt;
  const answer = parseRaw(await received);

  assert.equal(exited, 0, ep.output());
  assert.equal(answer.status, 503);
  assert.equal((JSON.parse(answer.body) as { code?: string }).code, 'SEG_DRAINING');
  assert.match(answer.headers, /^connection: close$/m);
  assert.match(answer.headers, /^retry-after: 1$/m);
  assert.equal(readStore(out).records.length, 0, 'the refused event was not stored');

  const figures = { status: answer.status, code: 'SEG_DRAINING', exitCode: exited, exitMs };
  recordFigures('drain.lateRequest', figures);
  t.diagnostic(JSON.stringify(figures));
});

test('a keep-alive connection idle at SIGTERM is not closed under a request it sends next: 503 SEG_DRAINING', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-drain-next-'));
  const endpoints: Endpoint[] = [];
  t.after(cleanup(dir, endpoints));
  const out = join(dir, 'store');
  const ep = await startEndpoint([...tlsFlags(dir), '--api-key', 'dev-key', '--out', out]);
  endpoints.push(ep);

  // A sender that had its answer and sends its next request as the drain begins: closed under it, the
  // request would get no answer at all ("socket hang up"), not the 503 that says why.
  const { socket, received } = await openConnection(ep);
  t.after(() => socket.destroy());
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  socket.write(rawEvent('before-1'));
  await waitFor(() => text, /^HTTP\/1\.1 200 /, GUARD_MS);
  ep.child.kill('SIGTERM');
  await untilDraining(ep);
  await new Promise((done) => setTimeout(done, 100));
  socket.write(rawEvent('next-1'));
  const exited = await exitCode(ep);
  const all = await received;
  const second = parseRaw(all.slice(all.indexOf('HTTP/1.1 ', 1)));

  assert.equal(exited, 0, ep.output());
  assert.equal(second.status, 503, all);
  assert.equal((JSON.parse(second.body) as { code?: string }).code, 'SEG_DRAINING');
  assert.match(second.headers, /^connection: close$/m);
  assert.deepEqual(
    readStore(out).records.map((r) => r.event.messageId),
    ['before-1'],
  );
});

// The drain must end within --shutdown-timeout whatever the open connections do. These cover the
// connections that are not idle when the drain starts yet carry no event: close() waits for Node's
// server.close() callback without a bound, and only events in flight are cut off at the timeout.
const QUICK_SHUTDOWN_S = 1;

async function quickEndpoint(dir: string, endpoints: Endpoint[]): Promise<Endpoint> {
  const ep = await startEndpoint([
    ...tlsFlags(dir),
    '--api-key',
    'dev-key',
    '--out',
    join(dir, 'store'),
    '--shutdown-timeout',
    String(QUICK_SHUTDOWN_S),
  ]);
  endpoints.push(ep);
  assert.equal(await health(ep), 200);
  return ep;
}

test('a health check arriving during the drain answers 503 draining, and the process still exits 0', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-drain-health-'));
  const endpoints: Endpoint[] = [];
  t.after(cleanup(dir, endpoints));
  const ep = await quickEndpoint(dir, endpoints);
  const { socket, received } = await openConnection(ep);
  t.after(() => socket.destroy());
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  socket.write('GET /hea');
  await caughtUp(ep);
  const signalAt = Date.now();
  ep.child.kill('SIGTERM');
  await untilDraining(ep);
  socket.write('lth HTTP/1.1\r\nhost: localhost\r\n\r\n');
  await waitFor(() => text, /\r\n\r\n\{.*\}/, GUARD_MS);
  const answer = parseRaw(text);
  const exited = await exitCode(ep);
  const exitMs = Date.now() - signalAt;
  await received;

  const figures = { healthStatus: answer.status, body: answer.body, exitCode: exited, exitMs };
  recordFigures('drain.healthDuringDrain', figures);
  t.diagnostic(JSON.stringify(figures));
  assert.equal(answer.status, 503);
  assert.deepEqual(JSON.parse(answer.body), { status: 'draining' });
  assert.equal(exited, 0, 'a clean exit, the connection kept alive after the answer notwithstanding');
});

test('a connection open but silent at SIGTERM does not hold the exit past --shutdown-timeout', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-drain-silent-'));
  const endpoints: Endpoint[] = [];
  t.after(cleanup(dir, endpoints));
  const ep = await quickEndpoint(dir, endpoints);
  // A pre-opened connection (a pooling client, a load balancer warming up, a slow client).
  const { socket, received } = await openConnection(ep);
  t.after(() => socket.destroy());
  await caughtUp(ep);
  const signalAt = Date.now();
  ep.child.kill('SIGTERM');
  const exited = await exitCode(ep);
  const exitMs = Date.now() - signalAt;
  const text = await received;

  const figures = { exitCode: exited, exitMs };
  recordFigures('drain.silentConnection', figures);
  t.diagnostic(JSON.stringify(figures));
  assert.equal(exited, 0, 'a clean exit');
  // Closed by the drain, without a word. A drain that waited for the connection would have been freed
  // by the server's headers timeout instead, which answers 408 SEG_REQUEST_TIMEOUT before closing.
  assert.equal(text, '', 'the silent connection was closed by the drain');
});
