// Anchor: node:https + the minimum real work (auth compare, settings decode, JSON.parse, switch on type), no schema.

import fs from 'node:fs';
import https from 'node:https';

// The run's throwaway certificate (bench/cert.mjs), the one segment-endpoint is given too.
const tls = { key: fs.readFileSync(process.env.BENCH_KEY), cert: fs.readFileSync(process.env.BENCH_CERT) };
const AUTH = `Basic ${Buffer.from('segment:').toString('base64')}`;
const types = new Set(['identify', 'track', 'page', 'screen', 'group', 'alias']);
const err = (res, code, message) => {
  const b = JSON.stringify({ message });
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(b) });
  res.end(b);
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
    res.writeHead(200, { 'content-length': '0' });
    res.end();
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT || 9443), '127.0.0.1', () => process.send?.('ready'));
