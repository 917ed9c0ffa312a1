// Anchor: the parse floor (raw-json.mjs) made durable the least costly way: each accepted event appended
// as a line to one file, group-committed (one write + fdatasync in flight, the lines that arrive
// meanwhile sharing the next), the 200 sent once its line is synced. As the default store does, a
// process with one core writes and syncs on the event loop at the end of the first turn of the loop
// that reads no more lines (every line read until then joins), else on the thread pool. No repair, no
// day files, no cut-back on failure: the limit any durable server reaches on this disk and core, beside
// which the default store's "durable ≥ 0.85 × no-op" is read. The store directory is the first argument.
// Its request handling is raw-json.mjs's, copied rather than imported: each anchor is one file that
// stands alone and that raw-json.mjs (a reference file of issue 10) need not change for.

import fs from 'node:fs';
import https from 'node:https';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

const tls = { key: fs.readFileSync(process.env.BENCH_KEY), cert: fs.readFileSync(process.env.BENCH_CERT) };
const AUTH = `Basic ${Buffer.from('segment:').toString('base64')}`;
const types = new Set(['identify', 'track', 'page', 'screen', 'group', 'alias']);
const err = (res, code, message) => {
  const b = JSON.stringify({ message });
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
  res.end(b);
};

fs.mkdirSync(process.argv[2], { recursive: true });
const fd = fs.openSync(join(process.argv[2], 'events.ndjson'), 'a');
let queue = [];
let syncing = false;
function commit() {
  syncing = true;
  const group = queue;
  queue = [];
  const bytes = Buffer.from(group.map((pending) => pending.line).join(''));
  fs.write(fd, bytes, 0, bytes.length, null, (writeErr) => {
    if (writeErr) throw writeErr;
    fs.fdatasync(fd, (syncErr) => {
      if (syncErr) throw syncErr;
      for (const pending of group) pending.done();
      if (queue.length > 0) commit();
      else syncing = false;
    });
  });
}
// One core: the thread pool's answer would wait for the core the main thread holds.
function commitOnLoop() {
  const group = queue;
  queue = [];
  const bytes = Buffer.from(group.map((pending) => pending.line).join(''));
  for (let at = 0; at < bytes.length; ) at += fs.writeSync(fd, bytes, at, bytes.length - at);
  fs.fdatasyncSync(fd);
  syncing = false;
  for (const pending of group) pending.done();
}
// As the default store does (CommitQueue.quiet): the commit waits for a turn that reads no more lines,
// 256 at most, so that the requests arriving while a turn works join it.
let added = 0;
function whenQuiet() {
  if (added > 0 && queue.length < 256) {
    added = 0;
    setImmediate(whenQuiet);
  } else commitOnLoop();
}
const ONE_CORE = availableParallelism() === 1;
const append = (line, done) => {
  queue.push({ line, done });
  added++;
  if (syncing) return;
  if (ONE_CORE) {
    syncing = true;
    added = 0;
    setImmediate(whenQuiet);
  } else commit();
};

const server = https.createServer(tls, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.headers.authorization !== AUTH) return err(res, 401, 'Invalid API key');
    let settings, ev;
    try {
      settings = JSON.parse(Buffer.from(req.headers['x-segment-settings'] || 'e30=', 'base64').toString());
    } catch {
      return err(res, 400, 'bad settings');
    }
    try {
      ev = JSON.parse(Buffer.concat(chunks).toString());
    } catch {
      return err(res, 400, 'bad json');
    }
    if (!types.has(ev.type)) return err(res, 501, 'unsupported');
    const line = `${JSON.stringify({ receivedAt: new Date().toISOString(), settings, event: ev })}\n`;
    append(line, () => {
      res.writeHead(200, { 'content-length': '0' });
      res.end();
    });
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT || 9443), '127.0.0.1', () => process.send?.('ready'));
