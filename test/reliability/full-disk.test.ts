// A real full disk, as reported: a 64 KiB tmpfs as --out, ~900-byte events until it is full, space freed,
// more events, a restart. While full, events are 503 SEG_STORE_UNAVAILABLE and health is 503; once space
// returns both recover by themselves; the store file holds exactly the acknowledged events, each on a
// whole line (no partial line in the middle, none for start-up repair to set aside). Mounting needs root
// on Linux: elsewhere the test is skipped (test/store-failure.test.ts covers the same with a simulated
// disk, everywhere).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { trackEvent } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import {
  cleanup,
  type Endpoint,
  health,
  readStore,
  send,
  startEndpoint,
  stopCleanly,
  tlsFlags,
} from './harness.ts';

/** Mounts a tmpfs of `size` at a new directory; a reason to skip when this process cannot. */
function mountTmpfs(size: string): { dir: string } | { skip: string } {
  if (process.platform !== 'linux') return { skip: 'tmpfs mounts are Linux only' };
  if (process.getuid?.() !== 0) return { skip: 'mounting a tmpfs needs root' };
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return { dir };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return { skip: `cannot mount a tmpfs here: ${(err as Error).message.split('\n')[0]}` };
  }
}

const mounted = mountTmpfs('64k');

test('a full tmpfs: 503 and health unavailable while full, recovery when space returns, no partial line', {
  skip: 'skip' in mounted ? mounted.skip : false,
}, async () => {
  if (!('dir' in mounted)) return;
  const work = mkdtempSync(join(tmpdir(), 'segment-endpoint-full-disk-'));
  const out = join(mounted.dir, 'store');
  const filler = join(mounted.dir, 'filler');
  const endpoints: Endpoint[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: testCert().cert });
  try {
    mkdirSync(out);
    writeFileSync(filler, Buffer.alloc(24 * 1024)); // the space freed later
    const flags = [...tlsFlags(work), '--api-key', 'dev-key', '--out', out];
    const first = await startEndpoint(flags);
    endpoints.push(first);
    const event = (n: number) => trackEvent({ messageId: `e${n}`, properties: { pad: 'x'.repeat(640) } });
    const acknowledged: string[] = [];
    let n = 0;
    let refused: { status: number; code?: string | undefined; retryAfter?: string | undefined } | undefined;
    while (refused === undefined && n < 200) {
      const answer = await send(agent, first.url, event(n++));
      if (answer.status === 200) acknowledged.push(answer.id);
      else refused = answer;
    }
    assert.deepEqual(
      { status: refused?.status, code: refused?.code, retryAfter: refused?.retryAfter },
      { status: 503, code: 'SEG_STORE_UNAVAILABLE', retryAfter: '1' },
    );
    assert.equal(await health(first), 503);
    assert.equal((await send(agent, first.url, event(n++))).status, 503, 'still full');

    rmSync(filler);
    for (let more = 0; more < 20; more++) {
      const answer = await send(agent, first.url, event(n++));
      assert.equal(answer.status, 200, `after space returned: ${JSON.stringify(answer)}`);
      acknowledged.push(answer.id);
    }
    await stopCleanly(first);

    const second = await startEndpoint(flags);
    endpoints.push(second);
    await stopCleanly(second);

    const { records, broken } = readStore(out);
    assert.equal(broken, 0, 'every line of the store parses');
    assert.deepEqual(
      records.map((r) => r.event.messageId),
      acknowledged,
    );
    assert.deepEqual(
      readdirSync(out).filter((name) => name.endsWith('.torn')),
      [],
      'nothing for start-up repair to set aside',
    );
  } finally {
    agent.destroy();
    await cleanup(work, endpoints)();
    execFileSync('umount', [mounted.dir]);
    rmSync(mounted.dir, { recursive: true, force: true });
  }
});
