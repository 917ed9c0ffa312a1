#!/usr/bin/env node
// segment-endpoint's command (dist/cli.js, made by scripts/bundle-cli.ts from this file). Its code is
// dist/cli-main.cjs, compiled here with the V8 code cache `make build` made for it
// (dist/cli-main.v8cache): Node 20 keeps no compiled code between runs, and compiling the CLI's ~620 KB
// at every start cost 10–20 ms of it (bench/HISTORY.md, "Start: the CLI in one file"). V8 refuses a cache
// another node made (another V8, other V8 flags): the code is then compiled as if there were none.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
// The error classes a partner's handlers module imports from the package: the command's own, by
// `instanceof`, so imported here, beside the package, and handed to the code.
import * as errors from './errors.js';

const code = fileURLToPath(new URL('./cli-main.cjs', import.meta.url));
const require = createRequire(code);

/** The SHA-256 that heads dist/cli-main.v8cache: of the code, then of V8's data. */
export const cacheKey = (source, data) => createHash('sha256').update(source).update(data).digest();
const CACHE_KEY_BYTES = 32;
/** The CLI's code compiled with its cache; scripts/code-cache.mjs makes the cache from it, once started. */
export let script;
let run;
if (process.sourceMapsEnabled) {
  // Node maps the stack traces of the modules it loads, not of a script compiled by node:vm.
  run = require(code);
} else {
  const source = readFileSync(code);
  let cachedData;
  try {
    const file = readFileSync(fileURLToPath(new URL('./cli-main.v8cache', import.meta.url)));
    // The file is the SHA-256 of the code and V8's data, then the data (scripts/code-cache.mjs). V8 checks
    // of its data only the header and the code's length: data damaged past the header crashes the
    // process (a V8 fatal error), and data for other code of the same length runs that other code.
    const data = file.subarray(CACHE_KEY_BYTES);
    if (file.length > CACHE_KEY_BYTES && cacheKey(source, data).equals(file.subarray(0, CACHE_KEY_BYTES)))
      cachedData = data;
  } catch {
    // no cache: compiled as without one
  }
  // As node would wrap the module, on its first line: the lines of the stack traces stay right. Named
  // in them by the package's path, not the file's: V8 keeps the name the cache was made under (the
  // build machine's path) over the one given here.
  script = new Script(`(function (module) {${source.toString('utf8')}\n})`, {
    filename: 'segment-endpoint/dist/cli-main.cjs',
    cachedData,
  });
  const loaded = { exports: undefined };
  script.runInThisContext()(loaded);
  run = loaded.exports;
}
// What an ES module has and a script has not, from here: `import.meta.url` (this file's: the CLI runs
// when node was given this file) and `import()`, so that packages and a handlers module load as they
// would from dist/cli.js.
const module = { exports: {} };
run(require, module, module.exports, errors, import.meta.url, (specifier) => import(specifier));
