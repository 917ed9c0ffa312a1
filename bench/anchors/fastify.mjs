// Peer anchor: fastify 5 over https doing the same contract work, written the idiomatic way.

import fs from 'node:fs';
import Fastify from 'fastify';
import { validators } from './schemas.mjs';

// The run's throwaway certificate (bench/cert.mjs), the one segment-endpoint is given too.
const tls = { key: fs.readFileSync(process.env.BENCH_KEY), cert: fs.readFileSync(process.env.BENCH_CERT) };
const AUTH = `Basic ${Buffer.from('segment:').toString('base64')}`;
const app = Fastify({ logger: false, https: tls, keepAliveTimeout: 65_000 });
app.addHook('onRequest', async (req, reply) => {
  if (req.headers.authorization !== AUTH) return reply.code(401).send({ message: 'Invalid API key' });
});
app.post('/', async (req, reply) => {
  try {
    JSON.parse(Buffer.from(req.headers['x-segment-settings'] || 'e30=', 'base64').toString());
  } catch {
    return reply.code(400).send({ message: 'bad settings' });
  }
  const ev = req.body;
  const v = validators[ev?.type];
  if (!v) return reply.code(501).send({ message: 'unsupported type' });
  if (!v(ev)) return reply.code(400).send({ message: v.errors[0].message });
  reply.code(200).send();
});
await app.listen({ port: Number(process.env.PORT || 9443), host: '127.0.0.1' });
process.send?.('ready');
