// Builds test-build/, the CLI the tests start (test/helpers-spawn.ts): each module of src/ compiled as tsx
// compiles it when the tests import it, with the same esbuild options, so that c8 maps the coverage of
// both onto the same functions and branches of src/ (tsc's output maps them apart: each was counted
// twice). Only the relative imports' `.ts` become `.js`, of the same length: the source maps stay right.
// A start through tsx itself cost ~0.4 s more CPU, ~380 times a suite. Run by `make test-build` and `npm
// run test-build`: it empties test-build/ first and marks it built last (the stamp, test-build/built).
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { transform } from 'esbuild';
import ts from 'typescript';

const ROOT = join(import.meta.dirname, '..');
const SRC = join(ROOT, 'src');
const OUT = join(ROOT, 'test-build');

// tsx's options for a TypeScript module it loads (node_modules/tsx/dist: `minifyWhitespace`, `keepNames`,
// the running node as the target), and the project's tsconfig.json, which tsx hands esbuild too.
const { config, error } = ts.readConfigFile(join(ROOT, 'tsconfig.json'), ts.sys.readFile);
if (error !== undefined) throw new Error(ts.flattenDiagnosticMessageText(error.messageText, '\n'));
const OPTIONS = {
  loader: 'ts',
  format: 'esm',
  target: `node${process.versions.node}`,
  sourcemap: true,
  sourcesContent: true,
  minifyWhitespace: true,
  keepNames: true,
  tsconfigRaw: { compilerOptions: config.compilerOptions },
} as const;

/** A relative module named in an import or export (static or dynamic), its `.ts` to be `.js`. */
const RELATIVE_TS = /((?:\bfrom|\bimport)\s*\(?\s*)(["'])(\.{1,2}\/[^"'\n]*)\.ts\2/g;

// The stamp is made before the sources are read and put in place once every module is written, keeping
// the time the build began: a source edited during the build is newer than it, for make and for the tests
// alike (test/helpers-spawn.ts). A build that fails leaves no stamp.
rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT);
const BEGAN = join(OUT, 'began');
writeFileSync(BEGAN, '');

// As the Makefile's SOURCES: every .ts file under src/ but dotfiles (an editor's lock file, `.#name.ts`).
const sources = readdirSync(SRC, { recursive: true, encoding: 'utf8' }).filter(
  (file) => file.endsWith('.ts') && !basename(file).startsWith('.'),
);
for (const file of sources) {
  const source = join(SRC, file);
  const out = join(OUT, file.replace(/\.ts$/, '.js'));
  const result = await transform(readFileSync(source, 'utf8'), { ...OPTIONS, sourcefile: source });
  const code = result.code.replace(RELATIVE_TS, '$1$2$3.js$2');
  // What the pattern missed would fail only when that import runs: said now instead.
  const left = /(?:\bfrom|\bimport)\s*\(?\s*["']\.{1,2}\/[^"'\n]*\.ts["']/.exec(code);
  if (left !== null) throw new Error(`scripts/test-build.ts: ${file}: an import left as .ts: ${left[0]}`);
  const map = JSON.parse(result.map) as { sources: string[] };
  map.sources = [relative(dirname(out), source)];
  mkdirSync(dirname(out), { recursive: true });
  const inline = Buffer.from(JSON.stringify(map)).toString('base64');
  writeFileSync(out, `${code}//# sourceMappingURL=data:application/json;base64,${inline}\n`);
}
renameSync(BEGAN, join(OUT, 'built'));
