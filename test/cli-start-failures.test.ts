import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BUILT } from './cli-harness.ts';
import { CLI, httpFlags, spawnClean } from './helpers-spawn.ts';
import { waitFor } from './helpers-wait.ts';

// A start-up that fails or cannot finish: a handlers module that throws what is not an Error, one whose
// top-level await waits for nothing, a certificate named on a pipe nobody writes, a module that holds
// start-up for ever. Each ends, and says why.

describe('a start-up that fails or cannot finish', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-stuck-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('a handlers module that throws what is not an Error: said as what it threw, of --handlers', async () => {
    const module = join(dir, 'throws.mjs');
    for (const [thrown, said] of [
      ['null', 'null'],
      ['undefined', 'undefined'],
      ["'config missing'", '"config missing"'],
    ]) {
      writeFileSync(module, `throw ${thrown};\n`);
      const run = spawnClean(process.execPath, [...CLI, ...httpFlags('k1'), '--handlers', module]);
      assert.equal(await run.exit, 1, run.stderr());
      assert.equal(
        run.stderr(),
        `segment-endpoint: --handlers: cannot load ${module}: ${said}\nTry 'segment-endpoint --help'.\n`,
      );
    }
  });

  test('a .ts handlers module and no TypeScript loader: the line says how to give it one', async () => {
    // Node's own words alone ('Unknown file extension ".ts"') left the partner to find the README's loader.
    const module = join(dir, 'handlers.ts');
    writeFileSync(module, 'export default { track() {} };\n');
    const run = spawnClean(process.execPath, [...BUILT, ...httpFlags('k1'), '--handlers', module]);
    assert.equal(await run.exit, 1, run.stderr());
    assert.match(
      run.stderr(),
      /cannot load .*handlers\.ts: Unknown file extension "\.ts".*; a TypeScript module needs a loader: NODE_OPTIONS='--import tsx' \(tsx installed where it runs from\)\n/,
    );
  });

  test("--handlers: a class's method one slip from a type it lacks is warned of at start, as the library does", async () => {
    // The module's handlers were checked and copied into a plain object before the library saw them,
    // so the library's check of a class's methods found nothing to say.
    const module = join(dir, 'slip.mjs');
    writeFileSync(module, 'class H { track() {} idenitfy() {} }\nexport default new H();\n');
    const run = spawnClean(process.execPath, [...CLI, ...httpFlags('k1'), '--handlers', module]);
    try {
      await waitFor(() => run.stdout() + run.stderr(), /"msg":"listening"/);
      assert.match(
        run.stdout() + run.stderr(),
        /options\.handlers\.idenitfy is not a Segment event type: did you mean identify\?/,
      );
    } finally {
      run.child.kill('SIGTERM');
      await run.exit;
    }
  });

  test('a handlers module whose top-level await waits for nothing: one line, exit 1 (not a silent exit 0)', async () => {
    const module = join(dir, 'never.mjs');
    writeFileSync(module, 'await new Promise(() => {});\nexport default { track: () => {} };\n');
    const run = spawnClean(process.execPath, [...CLI, ...httpFlags('k1'), '--handlers', module]);
    assert.equal(await run.exit, 1, run.stderr());
    assert.match(
      run.stderr(),
      /^segment-endpoint: --handlers: .*never\.mjs never finished loading: its top-level await waits for something that cannot happen\n/,
    );
  });

  test('--handlers that is not a module file, or a module that handles nothing: refused at once', async () => {
    // A named pipe would hold the start in open() for good, beyond any signal; a module exporting `{}` (or
    // an empty file, /dev/null) would start healthy and answer every event 501, which Segment never retries.
    const fifo = join(dir, 'handlers.fifo');
    execFileSync('mkfifo', [fifo]);
    const empty = join(dir, 'empty.mjs');
    writeFileSync(empty, 'export default { track: undefined };\n');
    const blank = join(dir, 'blank.mjs');
    writeFileSync(blank, '');
    const cases: Array<[string, RegExp]> = [
      [fifo, /^segment-endpoint: --handlers: .*handlers\.fifo is not a regular file/],
      ['/dev/null', /^segment-endpoint: --handlers: \/dev\/null is not a regular file/],
      [
        empty,
        /^segment-endpoint: --handlers .*empty\.mjs: handles no event type: export at least one of identify, track, /,
      ],
      [
        blank,
        /^segment-endpoint: --handlers: .*blank\.mjs must export default \{ identify\?, track\?, \.\.\. \}/,
      ],
    ];
    for (const [module, message] of cases) {
      const run = spawnClean(process.execPath, [...CLI, ...httpFlags('k1'), '--handlers', module]);
      const bound = setTimeout(() => run.child.kill('SIGKILL'), 10_000);
      assert.equal(await run.exit, 1, `${module}: ${run.stderr()}`);
      clearTimeout(bound);
      assert.match(run.stderr(), message);
    }
  });

  test('--cert on a named pipe nobody writes to: SIGTERM still ends it', async () => {
    const fifo = join(dir, 'cert.fifo');
    execFileSync('mkfifo', [fifo]);
    const run = spawnClean(process.execPath, [...CLI, '--cert', fifo, '--key', fifo, '--api-key', 'k1']);
    // Blocked in opening the pipe, as long as nobody writes: the signal can come at any time after.
    await new Promise((resolve) => setTimeout(resolve, 500));
    run.child.kill('SIGTERM');
    const code = await run.exit;
    assert.ok(code !== 0, `exit ${code}`);
  });

  test('a second SIGTERM or SIGINT while start-up is held exits 1 at once, and says so', async () => {
    const module = join(dir, 'held.mjs');
    writeFileSync(
      module,
      "process.stdout.write('handlers loading\\n');\nawait new Promise((resolve) => setTimeout(resolve, 3_600_000));\nexport default {};\n",
    );
    const run = spawnClean(process.execPath, [...CLI, ...httpFlags('k1'), '--handlers', module]);
    await waitFor(run.stdout, /handlers loading/);
    run.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 100));
    run.child.kill('SIGINT');
    assert.equal(await run.exit, 1, run.stderr());
    assert.match(run.stderr(), /second signal during start-up: exiting/);
  });
});
