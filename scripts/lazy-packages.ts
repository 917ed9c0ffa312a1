// An esbuild plugin for the shipped single files (scripts/bundle.ts, scripts/sea.ts): the packages only
// some flags use (pg for --postgres, @redis/client for --idempotency-redis) go into the file as text,
// bundled on their own, and are evaluated on their first import only.
// Bundled as code, V8 would parse them at every start whether used or not: ~30 ms and ~9 MiB of a
// 3 MiB file (bench/HISTORY.md). A string literal costs the parser next to nothing.
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';
import { build, type Plugin } from 'esbuild';

const LAZY = ['pg', '@redis/client'];
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

export function lazyPackages(root: string): Plugin {
  const require = createRequire(`${root}/package.json`);
  return {
    name: 'lazy-packages',
    setup(esbuild) {
      const filter = new RegExp(`^(?:${LAZY.map((name) => name.replace('/', '\\/')).join('|')})$`);
      esbuild.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'lazy-package' }));
      esbuild.onLoad({ filter: /.*/, namespace: 'lazy-package' }, async (args) => {
        const bundled = await build({
          entryPoints: [require.resolve(args.path)],
          bundle: true,
          platform: 'node',
          format: 'cjs',
          target: 'node20',
          write: false,
          logLevel: 'warning',
          // Optional peers these packages try and do without (pg-native, OpenTelemetry, xxhash).
          external: ['pg-native', '@opentelemetry/api', '@node-rs/xxhash'],
        });
        // A package's main may start with a `#!` line: not JavaScript inside a function.
        const code = (bundled.outputFiles[0]?.text ?? '').replace(/^#!.*\n/, '');
        // The names the package exports, so that `import { createClient }` finds them as it would in node.
        const names = Object.keys(require(args.path) as object).filter(
          (n) => n !== 'default' && IDENTIFIER.test(n),
        );
        // Compressed: the file's own text stays small and ASCII (a single character past ASCII would make V8
        // hold the whole source as two bytes a character).
        const packed = gzipSync(code, { level: 9 }).toString('base64');
        const contents = [
          // require, not import: an import of node:zlib would be hoisted to the file's start, and load it
          // at every start.
          `const code = require('node:zlib').gunzipSync(Buffer.from(${JSON.stringify(packed)}, 'base64')).toString();`,
          'const module = { exports: {} };',
          'new Function("module", "exports", "require", code)(module, module.exports, require);',
          'export default module.exports;',
          ...names.map((name) => `export const ${name} = module.exports.${name};`),
        ].join('\n');
        return { contents, loader: 'js' };
      });
    },
  };
}
