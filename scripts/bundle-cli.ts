// Bundles dist/cli.js, what `node dist/cli.js` and the package's bin run, after tsc has built dist/: the
// CLI and the modules it imports in one file. Node 20 loads ES modules one at a time (read, compile,
// link): the 53 of a default start cost ~20–25 ms (bench/README.md, "Start: the CLI in one file").
//
// Two kinds of import stay imports:
// - packages (pg, @redis/client), loaded from node_modules when a flag needs them, as before;
// - the error classes, dist/errors.js: a partner's handlers module imports them from the package
//   (dist/index.js) and throws them, and the command must know them by `instanceof`. A copy inside the
//   bundle would be other classes, and a RetryError an unknown error.
// Not minified, for the reason scripts/bundle.ts gives. Run by `make build` / `npm run build`.
import { chmodSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const ROOT = join(import.meta.dirname, '..');
const OUT = join(ROOT, 'dist', 'cli.js');
const SHARED = join(ROOT, 'src', 'errors.ts');

await build({
  entryPoints: [join(ROOT, 'src', 'cli.ts')],
  outfile: OUT,
  bundle: true,
  packages: 'external',
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  sourcesContent: false,
  plugins: [
    {
      name: 'shared-with-the-package',
      setup(esbuild) {
        esbuild.onResolve({ filter: /errors\.ts$/ }, (args) =>
          join(args.resolveDir, args.path) === SHARED ? { path: './errors.js', external: true } : undefined,
        );
      },
    },
  ],
  logLevel: 'warning',
});
// Should the plugin miss (a path spelt another way), the classes would be bundled without a word.
if (/\bEndpointError = class\b|\bclass EndpointError\b/.test(readFileSync(OUT, 'utf8'))) {
  throw new Error('dist/cli.js holds a copy of src/errors.ts: the error classes must stay an import');
}
chmodSync(OUT, 0o755);
