// Bundles the CLI and everything it imports into dist/segment-endpoint.mjs: one file that runs with
// nothing but `node` (>= 20.19), for a VM without npm. Run by `make dist` / `npm run dist`;
// test/dist.test.ts runs the result alone in an empty directory.
//
// Not minified: unminified stack traces in the JSON log name real functions and lines that a reader can
// find without a source map, and what minifying would save is small (bench/HISTORY.md).
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { lazyPackages } from './lazy-packages.ts';

const ROOT = join(import.meta.dirname, '..');
const OUT = join(ROOT, 'dist', 'segment-endpoint.mjs');
const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

await build({
  entryPoints: [join(ROOT, 'src', 'cli.ts')],
  outfile: OUT,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // src/cli.ts reads ../package.json for --version, which is not beside the bundle.
  define: { SEGMENT_ENDPOINT_VERSION: JSON.stringify(version) },
  plugins: [lazyPackages(ROOT)],
  logLevel: 'warning',
});
// esbuild keeps the entry point's `#!/usr/bin/env node` (a `banner` would add a second one, a syntax
// error), so the file runs as `./segment-endpoint.mjs` once executable.
const SHEBANG = '#!/usr/bin/env node\n';
const text = readFileSync(OUT, 'utf8');
if (!text.startsWith(SHEBANG)) {
  throw new Error('src/cli.ts lost its #!/usr/bin/env node line: the bundle would not run by itself');
}
// The CommonJS packages bundled for --postgres and --idempotency-redis (pg, @redis/client) require
// node's own modules; an ES module has no `require` unless it makes one, right after that line.
const REQUIRE =
  "import { createRequire as segmentEndpointRequire } from 'node:module';\nconst require = segmentEndpointRequire(import.meta.url);\n";
writeFileSync(OUT, SHEBANG + REQUIRE + text.slice(SHEBANG.length));
chmodSync(OUT, 0o755);
console.log(`dist/segment-endpoint.mjs ${version}: ${Math.round(statSync(OUT).size / 1024)} KiB`);
