#!/usr/bin/env node
// What checking an API key costs as the key set grows (`make bench`'s last step): the built-in
// authenticator (dist/auth.js) asked for a known and an unknown key, µs a check, with 10 to 100,000 keys
// (a destination's customers). An unknown key is never cached (credentials.ts keeps accepted headers
// only), so its cost is what a stranger's requests cost the endpoint. Then what loading a keys file
// costs, as at start and at each SIGHUP: read and checked (dist/config-keys.js), then the handler made
// with them (its authenticator built, dist/key-spec.js), ms, the process doing nothing else meanwhile;
// and the same as a SIGHUP reloads them while the endpoint serves (dist/keys-reload.js: the file read
// off the loop, checked and loaded in slices): the longest the event loop was held, timed by a timer
// that asks for a turn every millisecond.
//
//   node bench/auth-keys.mjs
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keyAuthenticator } from '../dist/auth.js';
import { apiKeySteps } from '../dist/config-keys.js';
import { createHandler, silentLogger } from '../dist/index.js';
import { reloadKeysInSlices } from '../dist/keys-reload.js';
import { atOnce } from '../dist/slices.js';

const key = (i) => `customer-${i}-${'k'.repeat(24)}`;

const rows = [];
for (const n of [10, 1_000, 10_000, 100_000]) {
  const keys = Array.from({ length: n }, (_, i) => key(i));
  const authenticate = keyAuthenticator(keys);
  const cost = (candidate) => {
    const checks = 200_000;
    const started = process.hrtime.bigint();
    for (let i = 0; i < checks; i++) authenticate(candidate(i));
    return Number(process.hrtime.bigint() - started) / 1e3 / checks;
  };
  cost((i) => keys[i % n]); // warm-up
  rows.push(`| ${n} | ${cost((i) => keys[i % n]).toFixed(2)} | ${cost((i) => `stranger-${i}`).toFixed(2)} |`);
}
process.stdout.write(
  `\nchecking an API key, µs a check (one process)\n| keys | a known key | an unknown key |\n| ---: | ---: | ---: |\n${rows.join('\n')}\n`,
);

const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-keys-'));
const loads = [];
try {
  for (const n of [10_000, 100_000, 1_000_000]) {
    const file = join(dir, `keys-${n}`);
    writeFileSync(file, Array.from({ length: n }, (_, i) => key(i)).join('\n'));
    const started = performance.now();
    const specs = atOnce(apiKeySteps(undefined, file, {}));
    const read = performance.now();
    // As the CLI starts: the handler's keys, which stay in use (and in memory) while a SIGHUP reloads.
    const handler = createHandler({ apiKeys: specs, log: silentLogger, handlers: {} });
    const built = performance.now();
    const ms = (a, b) => (b - a).toFixed(0);
    const sliced = await reloadInSlices(handler, file);
    loads.push(
      `| ${n} | ${ms(started, read)} | ${ms(read, built)} | ${ms(started, built)} | ${sliced.ms.toFixed(0)} | ${sliced.held.toFixed(1)} |`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(
  `\nloading a keys file, ms: at once (start) and in slices (a SIGHUP while serving)\n| keys | read and checked | authenticator built | in all, at once | in all, in slices | the loop held at most, in slices |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n${loads.join('\n')}\n`,
);

/** A SIGHUP's reload of `file` by `handler`, as the CLI does it: its time in all, the longest wait. */
async function reloadInSlices(handler, file) {
  let last = performance.now();
  let held = 0;
  const ticking = setInterval(() => {
    const now = performance.now();
    held = Math.max(held, now - last);
    last = now;
  }, 1);
  const started = performance.now();
  // The file read off the loop, its keys checked in slices, then loaded in slices (reloadKeysInSlices).
  const keysFile = { path: file, keys: (read) => apiKeySteps(undefined, file, {}, read) };
  await reloadKeysInSlices(keysFile, silentLogger, (keys) => handler.loadApiKeys(keys));
  const ms = performance.now() - started;
  clearInterval(ticking);
  return { ms, held: Math.max(held, performance.now() - last) };
}
