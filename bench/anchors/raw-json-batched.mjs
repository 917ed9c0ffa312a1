// Anchor: the parse floor (raw-json.mjs) with its answers written as segment-endpoint writes them: the
// 200s decided while the event loop takes the requests its poll found are written together at the end of
// the loop's turn (`setImmediate`), not one by one. What the same technique gives the least costly server,
// beside which ours is read once it writes its answers that way (bench/HISTORY.md, "Answers written
// together"). Its request handling is raw-json.mjs's, copied rather than imported: each anchor is one
// file that stands alone and that raw-json.mjs (a reference file of issue 10) need not change for.

import fs from 'node:fs';
import https from 'node:https';

const tls = { key: fs.readFileSync(process.env.BENCH_KEY), cert: fs.readFileSync(process.env.BENCH_CERT) };
const AUTH = `Basic ${Buffer.from('segment:').toString('base64')}`;
const types = new Set(['identify', 'track', 'page', 'screen', 'group', 'alias']);
const err = (res, code, message) => {
  const b = JSON.stringify({ message });
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
  res.end(b);
};

let waiting = [];
const flush = () => {
  const answers = waiting;
  waiting = [];
  for (const res of answers) {
    res.writeHead(200, { 'content-length': '0' });
    res.end();
  }
};
const ok = (res) => {
  waiting.push(res);
  if (waiting.length === 1) setImmediate(flush);
};

const server = https.createServer(tls, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.headers.authorization !== AUTH) return err(res, 401, 'Invalid API key');
    let _settings, ev;
    try {
      _settings = JSON.parse(Buffer.from(req.headers['x-segment-settings'] || 'e30=', 'base64').toString());
    } catch {
      return err(res, 400, 'bad settings');
    }
    try {
      ev = JSON.parse(Buffer.concat(chunks).toString());
    } catch {
      return err(res, 400, 'bad json');
    }
    if (!types.has(ev.type)) return err(res, 501, 'unsupported');
    ok(res);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT || 9443), '127.0.0.1', () => process.send?.('ready'));
