// A rung of the ablation ladder (ladder.mjs) as a node:https server, for the ladder under wrk
// (`make bench-ladder`): `node bench/ladder-server.mjs N` runs the body read and the first N stages. Same certificate and port
// variables as the anchors.
import fs from 'node:fs';
import https from 'node:https';
import { apiKey } from './events.mjs';
import { rung } from './ladder.mjs';

const tls = { key: fs.readFileSync(process.env.BENCH_KEY), cert: fs.readFileSync(process.env.BENCH_CERT) };
const server = https.createServer(tls, rung(Number(process.argv[2]), apiKey));
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT || 9443), '127.0.0.1', () => process.send?.('ready'));
