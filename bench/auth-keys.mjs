#!/usr/bin/env node
// What checking an API key costs as the key set grows (`make bench`'s last step): the built-in
// authenticator (dist/auth.js) asked for a known and an unknown key, µs a check, with 10 to 100,000 keys
// (a destination's customers). An unknown key is never cached (credentials.ts keeps accepted headers
// only), so its cost is what a stranger's requests cost the endpoint. Then what loading a keys file
// costs, as at start and at each SIGHUP: read and checked (dist/config-keys.js), then the handler made
// with them (its authenticator built, dist/key-spec.js), ms, the process doing nothing else meanwhile;
// and the same as a SIGHUP reloads them while the endpoint serves (dist/keys-reload.js: the file read
// off the loop, checked and loaded in slices): the longest the event loop was held, timed by a timer
// that asks for a turn every millisecond. And a burst of loadApiKeys calls made at once.
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

// A burst of loadApiKeys calls, as a partner reloading its keys at each customer's signup makes them:
// ten in one turn, of 100,000 keys each, the lists made before (and before the keys files below, whose
// million keys would leave the collector a heap ten times larger). How long the turn that made the
// calls took (each call checks its first slice at once), when the newest was in use, when all had
// settled, the longest the loop was held after the turn of the calls, and the process's peak RSS over
// what it was before.
{
  const calls = 10;
  const lists = Array.from({ length: calls }, (_, n) =>
    Array.from({ length: 100_000 }, (_, i) => `${key(i)}-${n}`),
  );
  const handler = createHandler({ apiKeys: [key(0)], log: silentLogger, handlers: {} });
  const before = process.memoryUsage.rss();
  let peak = before;
  const sampling = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 1);
  const started = performance.now();
  const loads = lists.map((list) => handler.loadApiKeys(list));
  const turn = performance.now() - started;
  let newest = 0;
  const burst = await timed(async () => {
    await loads.at(-1);
    newest = performance.now() - started;
    await Promise.all(loads);
  });
  clearInterval(sampling);
  const all = turn + burst.ms;
  const mib = ((peak - before) / 2 ** 20).toFixed(0);
  process.stdout.write(
    `\na burst of ${calls} loadApiKeys calls of 100,000 keys each, ms\n| the turn of the calls | newest in use | all settled | the loop held at most after | peak RSS over before, MiB |\n| ---: | ---: | ---: | ---: | ---: |\n| ${turn.toFixed(0)} | ${newest.toFixed(0)} | ${all.toFixed(0)} | ${burst.held.toFixed(1)} | ${mib} |\n`,
  );
}

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
function reloadInSlices(handler, file) {
  // The file read off the loop, its keys checked in slices, then loaded in slices (reloadKeysInSlices).
  const keysFile = { path: file, keys: (read) => apiKeySteps(undefined, file, {}, read) };
  return timed(() => reloadKeysInSlices(keysFile, silentLogger, (keys) => handler.loadApiKeys(keys)));
}

/** `work` awaited: its time in all, and the longest the event loop went without a turn meanwhile. */
async function timed(work) {
  let last = performance.now();
  let held = 0;
  const ticking = setInterval(() => {
    const now = performance.now();
    held = Math.max(held, now - last);
    last = now;
  }, 1);
  const started = performance.now();
  await work();
  const ms = performance.now() - started;
  clearInterval(ticking);
  return { ms, held: Math.max(held, performance.now() - last) };
}
