// Makes dist/cli-main.v8cache, the V8 code cache dist/cli.js compiles the CLI with (scripts/cli-loader.js):
// starts the CLI as `make run` does (the default store, in a directory of its own; plain HTTP, so that no
// certificate is needed), sends it one event, then writes the cache of its code as compiled by then
// (the start, an event's way through, the store) and stops it. Run by scripts/bundle-cli.ts with plain
// node: V8 takes a cache only from the same V8 under the same flags.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const DIST = join(import.meta.dirname, '..', 'dist');
const KEY = 'code-cache';
const store = mkdtempSync(join(tmpdir(), 'segment-endpoint-code-cache-'));
const port = await new Promise((resolve) => {
  const probe = createServer().listen(0, '127.0.0.1', () => {
    const { port } = probe.address();
    probe.close(() => resolve(port));
  });
});
const cli = join(DIST, 'cli.js');
process.argv = [process.execPath, cli, '--http', '--host', '127.0.0.1', '--port', String(port)];
process.argv.push('--api-key', KEY, '--out', store, '--log-level', 'error');
const { script, cacheKey } = await import(cli);

/** POSTs `body` (or GETs, without one) to `path`: its status, or undefined while nothing listens. */
const ask = (path, body) =>
  new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: body === undefined ? 'GET' : 'POST' },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.on('error', () => resolve(undefined));
    if (body !== undefined) {
      req.setHeader('authorization', `Basic ${Buffer.from(`${KEY}:`).toString('base64')}`);
      req.setHeader('content-type', 'application/json');
    }
    req.end(body);
  });

process.on('exit', () => rmSync(store, { recursive: true, force: true }));
try {
  const until = Date.now() + 20_000;
  while ((await ask('/health')) !== 200) {
    if (Date.now() > until) throw new Error('the CLI did not start in 20 s');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const event = { type: 'track', event: 'Cache Made', userId: 'u1', messageId: 'code-cache-1' };
  const status = await ask('/', JSON.stringify({ ...event, timestamp: new Date().toISOString() }));
  if (status !== 200) throw new Error(`the CLI answered its event ${status}`);
  // Headed by its key (scripts/cli-loader.js): the loader gives V8 only the data made for this code.
  const data = script.createCachedData();
  const key = cacheKey(readFileSync(join(DIST, 'cli-main.cjs')), data);
  writeFileSync(join(DIST, 'cli-main.v8cache'), Buffer.concat([key, data]));
} catch (err) {
  process.stderr.write(`scripts/code-cache.mjs: ${err.message}\n`);
  process.exit(1);
}
process.kill(process.pid, 'SIGTERM'); // the CLI drains and exits
