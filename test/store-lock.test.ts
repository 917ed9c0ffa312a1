import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { NdjsonStore } from '../src/index.ts';
import { runCli, startCli, storedEvents } from './cli-harness.ts';
import { segmentHeaders, tempDirs, trackEvent } from './helpers.ts';
import { httpFlags } from './helpers-spawn.ts';
import { waitUntil } from './helpers-wait.ts';

// One writer to a store: a second endpoint on the same --out (a manual start beside the service, two
// containers on one volume) would cut the other's lines when a write fails. It is refused at start.

const tempDir = tempDirs('lock');
const LOCK = '.segment-endpoint.lock';

test('a second endpoint on the same --out is refused at start, naming the process that holds it', async () => {
  const out = join(tempDir(), 'store');
  const first = await startCli([...httpFlags('k1'), '--out', out]);
  try {
    const second = await runCli([...httpFlags('k1'), '--out', out]);
    assert.equal(second.code, 1, second.stderr);
    assert.equal(
      second.stderr,
      `segment-endpoint: --out ${out} is in use by process ${first.child.pid}: one endpoint writes a store\n`,
    );
  } finally {
    first.child.kill('SIGTERM');
    assert.equal(await first.exit, 0);
  }
  assert.throws(() => lstatSync(join(out, LOCK)), { code: 'ENOENT' }, 'the lock is let go at exit');
});

test('a lock left by a process that is gone (kill -9, a power cut) is taken over', async () => {
  const dir = tempDir();
  const gone = spawnSync(process.execPath, [
    '-e',
    'process.stdout.write(String(process.pid))',
  ]).stdout.toString();
  symlinkSync(`${gone} 1`, join(dir, LOCK));
  const store = await NdjsonStore.open(dir);
  assert.match(readlinkSync(join(dir, LOCK)), new RegExp(`^${process.pid} \\d+ [\\w-]+/\\d+$`));
  await store.close();
  assert.throws(() => lstatSync(join(dir, LOCK)), { code: 'ENOENT' });
});

test('a lock left by a process that died and was not reaped yet (a zombie) is taken over', async (t) => {
  // A process manager that has not yet reaped the endpoint it killed (or a container whose init never
  // does): the pid is still in use, by a process that holds nothing. A restart was refused "in use".
  const dir = tempDir();
  const parent = spawn('sh', ['-c', 'sleep 0.1 & echo $!; exec sleep 30']);
  t.after(() => parent.kill('SIGKILL'));
  const pid = Number(
    await new Promise<string>((resolve) => parent.stdout.once('data', (d) => resolve(String(d)))),
  );
  const state = () => readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]?.split(' ') ?? [];
  await waitUntil(
    () => state()[0] === 'Z',
    () => `process ${pid} a zombie: ${state().join(' ')}`,
  );
  symlinkSync(`${pid} ${state()[19]}`, join(dir, LOCK));
  const store = await NdjsonStore.open(dir);
  assert.match(readlinkSync(join(dir, LOCK)), new RegExp(`^${process.pid} `));
  await store.close();
});

test('in one process: a second store on the same directory is refused until the first closes', async () => {
  const dir = tempDir();
  const store = await NdjsonStore.open(dir);
  await assert.rejects(NdjsonStore.open(dir), { code: 'SEG_STORE_IN_USE' });
  await store.close();
  const again = await NdjsonStore.open(dir);
  await again.close();
});

test('a lock of this pid started at another time is taken over; one of another machine or container is refused', async () => {
  const dir = tempDir();
  symlinkSync(`${process.pid} 1`, join(dir, LOCK)); // this pid, used before by a process that is gone
  const store = await NdjsonStore.open(dir);
  await store.close();
  symlinkSync('1 12345 another-boot/4026531836', join(dir, LOCK));
  await assert.rejects(NdjsonStore.open(dir), {
    code: 'SEG_STORE_IN_USE',
    message: `the store ${dir} is locked by process 1 of another machine or container: if none writes there, remove ${join(dir, LOCK)}`,
  });
});

test('a lock removed by hand while the endpoint runs: it still stops cleanly, exit 0', async () => {
  const out = join(tempDir(), 'store');
  const run = await startCli([...httpFlags('k1'), '--out', out]);
  unlinkSync(join(out, LOCK));
  run.child.kill('SIGTERM');
  assert.equal(await run.exit, 0, run.stderr());
});

test('with --workers, --out moved away and made again, or removed, while the endpoint runs: the next event stored locks the new directory for the primary, and a second endpoint there is refused', async () => {
  // Only the primary locks at start; its workers write under that lock. A new directory has none until
  // a worker, opening its file there, makes it again in the primary's name.
  const out = join(tempDir(), 'store');
  const first = await startCli([...httpFlags('k1'), '--out', out, '--workers', '2']);
  const stored = async () => {
    const res = await fetch(first.url, {
      method: 'POST',
      headers: { ...segmentHeaders('k1'), connection: 'close' },
      body: JSON.stringify(trackEvent()),
    });
    assert.equal(res.status, 200, await res.text());
  };
  const secondRefused = async () => {
    const second = await runCli([...httpFlags('k1'), '--out', out]);
    assert.equal(second.code, 1, second.stderr);
    assert.equal(
      second.stderr,
      `segment-endpoint: --out ${out} is in use by process ${first.child.pid}: one endpoint writes a store\n`,
    );
  };
  try {
    await stored();
    renameSync(out, `${out}.moved`);
    mkdirSync(out);
    await stored();
    await secondRefused();
    rmSync(out, { recursive: true });
    await stored();
    await secondRefused();
  } finally {
    first.child.kill('SIGTERM');
    assert.equal(await first.exit, 0, first.stderr());
  }
  assert.throws(() => lstatSync(join(out, LOCK)), { code: 'ENOENT' }, 'the primary lets it go at exit');
});

test('the lock is kept while the store is open: made again within a second when removed by hand; while another process holds it, events are refused and health says so', async () => {
  const dir = tempDir();
  const store = await NdjsonStore.open(dir);
  const path = join(dir, LOCK);
  await store.appendLine('{"n":1}');
  unlinkSync(path);
  await waitUntil(
    () => linkAt(path)?.startsWith(`${process.pid} `) === true,
    () => `lock: ${linkAt(path)}`,
  );
  unlinkSync(path);
  symlinkSync(String(process.ppid), path); // another endpoint, started in the second before it was made again
  await waitUntil(
    () => !store.writable,
    () => 'the store still says writable',
  );
  await assert.rejects(store.appendLine('{"n":2}'), { code: 'SEG_STORE_IN_USE' });
  unlinkSync(path); // the other one stopped
  await waitUntil(
    () => store.writable,
    () => 'the store does not take events again',
  );
  await store.appendLine('{"n":3}');
  await store.close();
  assert.deepEqual(storedEvents(dir), [{ n: 1 }, { n: 3 }]);
});

function linkAt(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}
