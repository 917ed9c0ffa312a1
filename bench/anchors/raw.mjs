// Floor anchor: node:https reading the whole body and answering 200, nothing else.

import fs from 'node:fs';
import https from 'node:https';

// The run's throwaway certificate (bench/cert.mjs), the one segment-endpoint is given too.
const tls = { key: fs.readFileSync(process.env.BENCH_KEY), cert: fs.readFileSync(process.env.BENCH_CERT) };
const server = https.createServer(tls, (req, res) => {
  req.on('data', () => {});
  req.on('end', () => {
    res.writeHead(200, { 'content-length': '0' });
    res.end();
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT || 9443), '127.0.0.1', () => process.send?.('ready'));
