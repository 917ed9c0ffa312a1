import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, readlinkSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { NdjsonStore } from '../src/index.ts';
import { runCli, startCli } from './cli-harness.ts';
import { tempDirs } from './helpers.ts';
import { httpFlags } from './helpers-spawn.ts';

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
  assert.match(readlinkSync(join(dir, LOCK)), new RegExp(`^${process.pid} \\d+$`));
  await store.close();
  assert.throws(() => lstatSync(join(dir, LOCK)), { code: 'ENOENT' });
});

test('in one process: a second store on the same directory is refused until the first closes', async () => {
  const dir = tempDir();
  const store = await NdjsonStore.open(dir);
  await assert.rejects(NdjsonStore.open(dir), { code: 'SEG_STORE_IN_USE' });
  await store.close();
  const again = await NdjsonStore.open(dir);
  await again.close();
});
