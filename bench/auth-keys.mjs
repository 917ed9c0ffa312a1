#!/usr/bin/env node
// What checking an API key costs as the key set grows (`make bench`'s last step): the built-in
// authenticator (dist/auth.js) asked for a known and an unknown key, µs a check, with 10 to 100,000 keys
// (a destination's customers). An unknown key is never cached (credentials.ts keeps accepted headers
// only), so its cost is what a stranger's requests cost the endpoint.
//
//   node bench/auth-keys.mjs
import { keyAuthenticator } from '../dist/auth.js';

const rows = [];
for (const n of [10, 1_000, 10_000, 100_000]) {
  const keys = Array.from({ length: n }, (_, i) => `customer-${i}-${'k'.repeat(24)}`);
  const authenticate = keyAuthenticator(keys);
  const cost = (key) => {
    const checks = 200_000;
    const started = process.hrtime.bigint();
    for (let i = 0; i < checks; i++) authenticate(key(i));
    return Number(process.hrtime.bigint() - started) / 1e3 / checks;
  };
  cost((i) => keys[i % n]); // warm-up
  rows.push(`| ${n} | ${cost((i) => keys[i % n]).toFixed(2)} | ${cost((i) => `stranger-${i}`).toFixed(2)} |`);
}
process.stdout.write(
  `\nchecking an API key, µs a check (one process)\n| keys | a known key | an unknown key |\n| ---: | ---: | ---: |\n${rows.join('\n')}\n`,
);
