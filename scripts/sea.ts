// Builds dist/segment-endpoint-linux-x64: node's single executable application, a copy of the node
// binary that runs this script with the CLI and everything it imports injected into it, so that a VM
// needs nothing installed, not even node. Run by `make sea`; test/sea.test.ts runs the result alone in an
// empty directory with no node on PATH.
//
// Node 20 runs a single executable's script as CommonJS, and its `require` reaches node's own modules
// only. So the CLI is bundled once more, as CommonJS (scripts/bundle.ts makes the ES module), with all
// it may load inside: pg and @redis/client too, so every flag and subcommand works.
// Not stripped: `strip` would save 13 MB of node's 99 but take the symbols a native crash is read with.

import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { build } from 'esbuild';
import { lazyPackages } from './lazy-packages.ts';

const ROOT = join(import.meta.dirname, '..');
const OUT = join(ROOT, 'dist', 'segment-endpoint-linux-x64');
// Node's documented names for the blob and the fuse that tells the binary it carries one.
const RESOURCE = 'NODE_SEA_BLOB';
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
// postject ships no types: the one function used here (README "API").
const { inject } = createRequire(import.meta.url)('postject') as {
  inject(file: string, resource: string, data: Buffer, options: { sentinelFuse: string }): Promise<void>;
};

if (process.platform !== 'linux' || process.arch !== 'x64') {
  // The binary is a copy of the node running this script: it runs where that node runs.
  throw new Error(`make sea builds on linux x64 only (this is ${process.platform} ${process.arch})`);
}

// The CommonJS bundle, node's configuration and the blob it makes stay in dist/sea/: a stack trace in the
// binary's JSON log names segment-endpoint.cjs and a line of it, to be read there.
const SEA_DIR = join(ROOT, 'dist', 'sea');
mkdirSync(SEA_DIR, { recursive: true });
await build({
  entryPoints: [join(ROOT, 'src', 'cli.ts')],
  outfile: join(SEA_DIR, 'segment-endpoint.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  define: {
    SEGMENT_ENDPOINT_VERSION: JSON.stringify(version),
    // src/cli.ts starts main() when this is defined: a single executable has no script file of its own
    // for process.argv[1] to name.
    SEGMENT_ENDPOINT_SEA: 'true',
    // CommonJS has no import.meta; __filename is the executable's path.
    'import.meta.url': '__segmentEndpointUrl',
  },
  banner: { js: "const __segmentEndpointUrl = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [lazyPackages(ROOT)],
  logLevel: 'warning',
});

// Without disableExperimentalSEAWarning every start prints node's ExperimentalWarning on stderr.
// useCodeCache is left off: it would take a start (--version) from about 70 ms to 40, but on node 20 a script
// compiled from the cache cannot import() (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING, a documented
// limitation), and --workers imports node:cluster, --handlers the partner's module.
const config = {
  main: 'segment-endpoint.cjs', // relative to SEA_DIR, as stack traces name it
  output: 'sea-prep.blob',
  disableExperimentalSEAWarning: true,
};
writeFileSync(join(SEA_DIR, 'sea-config.json'), `${JSON.stringify(config, null, 2)}\n`);
const prepared = spawnSync(process.execPath, ['--experimental-sea-config', 'sea-config.json'], {
  cwd: SEA_DIR,
  encoding: 'utf8',
});
if (prepared.status !== 0) throw new Error(`node --experimental-sea-config failed:\n${prepared.stderr}`);

// Into a copy beside the target, renamed at the end: a failed build leaves no half-made binary that
// make would take for up to date.
const binary = `${OUT}.partial`;
copyFileSync(process.execPath, binary);
chmodSync(binary, 0o755);
const blob = readFileSync(join(SEA_DIR, config.output));
await quietly(() => inject(binary, RESOURCE, blob, { sentinelFuse: FUSE }));
renameSync(binary, OUT);
const mib = (statSync(OUT).size / 1024 / 1024).toFixed(1);
console.log(`dist/segment-endpoint-linux-x64 ${version} (node ${process.version}): ${mib} MiB`);

/**
 * postject's ELF parser (LIEF) warns on console.warn about every one of the many notes in node's binary
 * ("Can't find string offset for section name '.note.100'"): harmless, and a dozen lines at each build.
 * Those are dropped; any other warning is shown.
 */
async function quietly(run: () => Promise<void>): Promise<void> {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (!/^warning: Can't find string offset for section name/.test(String(args[0]))) warn(...args);
  };
  try {
    await run();
  } finally {
    console.warn = warn;
  }
}
