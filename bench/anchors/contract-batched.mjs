// Anchor: the contract floor (../contract-floor.mjs: the plainest server that does the work the partner
// contract asks of every event, with a duplicate filter) as a server, its 200s written together at the
// end of the event loop's turn as segment-endpoint writes them (raw-json-batched.mjs's way). Under wrk it
// is the least an endpoint of the contract costs here: the measure beside which ours' margin over fastify
// is read (bench/README.md, "The contract floor under wrk").
import fs from 'node:fs';
import https from 'node:https';
import { contractFloor } from '../contract-floor.mjs';
import { apiKey } from '../events.mjs';
import handlers from '../noop-handlers.mjs';

const tls = { key: fs.readFileSync(process.env.BENCH_KEY), cert: fs.readFileSync(process.env.BENCH_CERT) };

let waiting = [];
const flush = () => {
  const answers = waiting;
  waiting = [];
  for (const res of answers) res.writeHead(200, { 'content-length': '0' }).end();
};
const ok = (res) => {
  waiting.push(res);
  if (waiting.length === 1) setImmediate(flush);
};

const server = https.createServer(tls, contractFloor(apiKey, handlers, { filter: true, ok }));
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT || 9443), '127.0.0.1', () => process.send?.('ready'));
