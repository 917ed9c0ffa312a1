// SIGTERM while every worker is still loading a --handlers module that then fails: the service never
// served, so the stop is a failed start (exit 1, the module's error said), as for one process, and not
// the clean drain it was taken for once a worker that never listened stopped counting against the exit.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI } from '../helpers-spawn.ts';
import { waitUntil } from '../helpers-wait.ts';
import { tlsFlags } from './harness.ts';

for (const workers of ['1', '2']) {
  test(`--workers ${workers}: SIGTERM while the start fails exits 1 and says why`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-term-at-start-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const at = (name: string) => JSON.stringify(join(dir, name));
    const module = join(dir, 'handlers.mjs');
    // Each process says it is loading, then waits for the test's word to fail.
    writeFileSync(
      module,
      [
        `import { existsSync, writeFileSync } from 'node:fs';`,
        `writeFileSync(${at('loading')} + (process.env.SEGMENT_ENDPOINT_WORKER ?? ''), '');`,
        `while (!existsSync(${at('fail-now')})) await new Promise((r) => setTimeout(r, 20));`,
        `throw new Error('broken handlers module');`,
        'export default { track() {} };',
        '',
      ].join('\n'),
    );
    const flags = ['--workers', workers, ...tlsFlags(dir), '--api-key', 'dev-key'];
    const child = spawn(process.execPath, [...CLI, ...flags, '--handlers', module]);
    t.after(() => child.kill('SIGKILL'));
    let output = '';
    child.stdout.on('data', (chunk) => {
      output += chunk;
    });
    child.stderr.on('data', (chunk) => {
      output += chunk;
    });
    const exit = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    const loading = workers === '1' ? ['loading'] : ['loading1', 'loading2'];
    await waitUntil(
      () => loading.every((name) => existsSync(join(dir, name))),
      () => `every process loading its module, in:\n${output}`,
      30_000,
    );
    child.kill('SIGTERM');
    await waitUntil(
      () => workers === '1' || /"msg":"draining every worker"/.test(output),
      () => `the drain begun, in:\n${output}`,
      10_000,
    );
    writeFileSync(join(dir, 'fail-now'), '');
    assert.equal(await exit, 1, output);
    assert.match(output, /broken handlers module/);
  });
}
