// Bundles the CLI, what `node dist/cli.js` and the package's bin run, after tsc has built dist/: the CLI
// and the modules it imports in one script, dist/cli-main.cjs, which dist/cli.js (scripts/cli-loader.js)
// compiles with the V8 code cache made here (scripts/code-cache.mjs). Node 20 loads ES modules one at a
// time (read, compile, link): the 53 of a default start cost ~20–25 ms; and it caches no compiled code,
// which a script compiled by node:vm can be given (bench/HISTORY.md, "Start: the CLI in one file").
//
// Two kinds of import stay imports:
// - packages (pg, @redis/client), loaded from node_modules when a flag needs them, as before;
// - the error classes, dist/errors.js: a partner's handlers module imports them from the package
//   (dist/index.js) and throws them, and the command must know them by `instanceof`. A copy inside the
//   bundle would be other classes, and a RetryError an unknown error. The loader imports them and
//   hands them to the script.
// Not minified, for the reason scripts/bundle.ts gives; its whitespace alone, minified, saved ~1.3 ms of a
// start, not enough to give up the lines of its stack traces (bench/HISTORY.md, "Start: where it goes").
// Run by `make build` / `npm run build`.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const ROOT = join(import.meta.dirname, '..');
const DIST = join(ROOT, 'dist');
const SHARED = join(ROOT, 'src', 'errors.ts');
// What the loader hands the script (scripts/cli-loader.js), as the names the bundle knows them by.
const PARAMETERS = ['require', 'module', 'exports', '__sharedErrors', '__cliUrl', '__import'];

const { outputFiles } = await build({
  entryPoints: [join(ROOT, 'src', 'cli.ts')],
  outfile: join(DIST, 'cli-main.cjs'),
  write: false,
  bundle: true,
  packages: 'external',
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  define: { 'import.meta.url': '__cliUrl' },
  sourcemap: 'linked',
  sourcesContent: false,
  plugins: [
    {
      name: 'shared-with-the-package',
      setup(esbuild) {
        esbuild.onResolve({ filter: /errors\.ts$/ }, (args) =>
          join(args.resolveDir, args.path) === SHARED ? { path: 'errors', namespace: 'shared' } : undefined,
        );
        esbuild.onLoad({ filter: /.*/, namespace: 'shared' }, () => ({
          contents: 'module.exports = __sharedErrors;',
          loader: 'js',
        }));
      },
    },
  ],
  logLevel: 'warning',
});
const code = outputFiles.find((file) => file.path.endsWith('.cjs'));
const map = outputFiles.find((file) => file.path.endsWith('.map'));
if (code === undefined || map === undefined) throw new Error('esbuild wrote no dist/cli-main.cjs');
// Should the plugin miss (a path spelt another way), the classes would be bundled without a word.
if (/\bEndpointError = class\b|\bclass EndpointError\b/.test(code.text)) {
  throw new Error('dist/cli-main.cjs holds a copy of src/errors.ts: the error classes must stay an import');
}
// A script compiled by node:vm has no import() of its own (Node 20 offers one only as an experiment,
// which a code cache loses): the loader's. The CLI's imports are all `await import(` or `import(...).then`.
const dynamic = code.text.match(/\bimport\(/g)?.length ?? 0;
// One character past Latin-1 anywhere (esbuild escapes those of strings and names, not of the comments
// it keeps: an en dash in a JSDoc) makes V8 hold the whole ~620 KB source, and the loader's wrapped
// copy, as two-byte strings: +1.3 MiB of the process's memory (bench/HISTORY.md). As an escape, the same
// character in a string, a template or a regular expression, and text in a comment.
const latin1 = (text: string) =>
  text.replace(/[\u0100-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
const body = latin1(code.text).replace(/\bimport\(/g, '__import(');
if (dynamic === 0) throw new Error('dist/cli-main.cjs: no import() found to route to the loader');
if (/\bimport\s*\(/.test(body)) throw new Error('dist/cli-main.cjs: an import() left unrouted');
// One function, a CommonJS module's export (as node loads it when source maps are on), its header where
// the shebang was: the source map's lines stay right.
const [shebang, ...lines] = body.split('\n');
if (!shebang?.startsWith('#!')) throw new Error('dist/cli-main.cjs: no shebang line to put the header on');
writeFileSync(code.path, `module.exports = function (${PARAMETERS.join(', ')}) {\n${lines.join('\n')}\n};\n`);
writeFileSync(map.path, map.text);

const LOADER = join(DIST, 'cli.js');
copyFileSync(join(ROOT, 'scripts', 'cli-loader.js'), LOADER);
chmodSync(LOADER, 0o755);
// tsc's declarations and map of the dist/cli.js it wrote, which the loader replaced.
for (const stale of ['cli.d.ts', 'cli.js.map']) rmSync(join(DIST, stale), { force: true });
// The cache, made by this node from the CLI started once: without it (a build that failed half way)
// the CLI still runs, compiled at each start.
rmSync(join(DIST, 'cli-main.v8cache'), { force: true });
// Plain node, as the CLI runs: V8 refuses a cache made under other flags (NODE_OPTIONS may carry some).
// And none of the CLI's own variables: the builder's SEGMENT_ENDPOINT_HANDLERS would be handed the
// cache's event, its SEGMENT_ENDPOINT_POSTGRES_URL stores it, its SEGMENT_ENDPOINT_PATH fails the build.
const env = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => name !== 'NODE_OPTIONS' && !name.startsWith('SEGMENT_')),
);
// It takes a free port, closes it and hands it to the CLI: on a busy machine another process can take it
// in between (EADDRINUSE), so a failed try is made again, twice at most, before the build fails.
for (let tries = 1; ; tries++) {
  try {
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'code-cache.mjs')], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env,
    });
    break;
  } catch (err) {
    if (tries === 3) throw err;
    process.stderr.write('scripts/bundle-cli.ts: making the code cache failed; trying again\n');
  }
}
