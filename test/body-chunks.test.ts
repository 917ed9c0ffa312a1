import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { type Running, startCli, storedEvents } from './cli-harness.ts';
import { basic, trackEvent } from './helpers.ts';
import { httpFlags } from './helpers-spawn.ts';
import { waitUntil } from './helpers-wait.ts';

// Bodies sent in many tiny chunks (chunked transfer coding, a byte a chunk): the bytes a sender may send
// are bounded by --max-body-bytes, and so must be what the endpoint holds for them. Kept one Buffer a
// chunk, a 200 KB body cost the process ~90 MiB; fed to the decoder a chunk at a time, a gzip body took
// longer to decode than its deadline allows.

const PAD_BYTES = 200_000;

type Stored = { messageId: string; properties?: { pad?: string } };
const stored = (dir: string) => storedEvents(join(dir, 'store')).map((record) => record.event as Stored);

/** The process's peak resident memory (VmHWM), MiB. */
function peakMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmHWM:\s+(\d+) kB/m);
  assert.ok(line !== null, 'VmHWM in /proc/PID/status');
  return Number(line[1]) / 1024;
}

/** `body` POSTed over a raw connection to `url` as one-byte chunks; the status line's code. */
async function sendInTinyChunks(url: string, body: Buffer, headers: Record<string, string>): Promise<number> {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const head = Object.entries({ ...headers, host: hostname, 'transfer-encoding': 'chunked' })
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  const chunks = Buffer.alloc(body.length * 6 + 5);
  let at = 0;
  for (const byte of body) {
    at += chunks.write('1\r\n', at);
    chunks[at++] = byte;
    at += chunks.write('\r\n', at);
  }
  at += chunks.write('0\r\n\r\n', at);
  socket.write(`POST / HTTP/1.1\r\n${head}\r\n`);
  socket.write(chunks.subarray(0, at));
  let answer = '';
  for await (const chunk of socket) {
    answer += chunk;
    if (answer.includes('\r\n\r\n')) break;
  }
  socket.destroy();
  return Number(answer.slice(9, 12));
}

describe('a body sent in one-byte chunks', () => {
  let dir: string;
  let run: Running;

  // A process a test: the peak it measures is its own.
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-chunks-'));
    run = await startCli([...httpFlags('k1'), '--out', join(dir, 'store')]);
  });
  afterEach(() => {
    run.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  test('is stored, and the memory held for it stays a small multiple of its size', async () => {
    const pid = run.child.pid as number;
    const before = peakMiB(pid);
    const headers = { authorization: basic('k1'), 'content-type': 'application/json' };
    const bodies = ['tiny-1', 'tiny-2'].map((id) =>
      Buffer.from(JSON.stringify(trackEvent({ messageId: id, properties: { pad: 'x'.repeat(PAD_BYTES) } }))),
    );
    const statuses = await Promise.all(bodies.map((body) => sendInTinyChunks(run.url, body, headers)));
    assert.deepEqual(statuses, [200, 200]);
    const grew = peakMiB(pid) - before;
    // ~0.4 MB of bodies. One Buffer object a chunk was ~175 MiB here.
    assert.ok(grew < 64, `the peak grew by ${grew.toFixed(0)} MiB for 0.4 MB of bodies`);
    const ids = stored(dir).map((e) => e.messageId);
    assert.deepEqual(ids.sort(), ['tiny-1', 'tiny-2']);
  });

  test('compressed (gzip), is decoded and stored, in bounded memory and well within its deadline', async () => {
    const pid = run.child.pid as number;
    const before = peakMiB(pid);
    // Random text: gzip leaves it ~3/4 of its size, so ~150,000 one-byte chunks to decode.
    const pad = randomBytes((PAD_BYTES * 3) / 4).toString('base64');
    const body = gzipSync(JSON.stringify(trackEvent({ messageId: 'tiny-gzip', properties: { pad } })));
    const headers = {
      authorization: basic('k1'),
      'content-type': 'application/json',
      'content-encoding': 'gzip',
    };
    // Fed to zlib a byte at a time, the body was still being decoded at its deadline (10 s): a 408.
    assert.equal(await sendInTinyChunks(run.url, body, headers), 200);
    const grew = peakMiB(pid) - before;
    assert.ok(grew < 48, `the peak grew by ${grew.toFixed(0)} MiB for a body of ${body.length} bytes`);
    const event = stored(dir).find((e) => e.messageId === 'tiny-gzip');
    assert.ok(event?.properties?.pad === pad, 'the stored event is the one sent');
  });

  test('labelled gzip but not, in two parts: a 400, and the connection serves the next request', async () => {
    const { hostname, port } = new URL(run.url);
    const socket = connect({ host: hostname, port: Number(port) });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const body = Buffer.from(JSON.stringify(trackEvent({ properties: { pad: 'x'.repeat(100_000) } })));
    const head = (extra: string, length: number) =>
      `POST / HTTP/1.1\r\nhost: ${hostname}\r\nauthorization: ${basic('k1')}\r\n` +
      `content-type: application/json\r\n${extra}content-length: ${length}\r\n\r\n`;
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk;
    });
    const answers = () => text.split(/(?=HTTP\/1\.1 )/).filter((part) => part !== '');
    socket.write(head('content-encoding: gzip\r\n', body.length));
    socket.write(body.subarray(0, 20_000));
    // The rest a moment later. A decoder fed the bytes as they came refused the first part then, and the
    // request was paused for good: the rest of its body was never read, nor the request after it.
    await new Promise((resolve) => setTimeout(resolve, 200));
    socket.write(body.subarray(20_000));
    const after = Buffer.from(JSON.stringify(trackEvent({ messageId: 'after-bad-encoding' })));
    socket.write(head('', after.length));
    socket.write(after);
    await waitUntil(
      () => answers().length === 2,
      () => `two answers, got: ${text}`,
    );
    socket.destroy();
    const [refused, accepted] = answers();
    assert.match(refused as string, /^HTTP\/1\.1 400 [\s\S]*"code":"SEG_BAD_ENCODING"/);
    assert.match(accepted as string, /^HTTP\/1\.1 200 /);
  });
});
