// What a partner would otherwise build: fastify 5 doing the contract's work the idiomatic way, with an
// auth hook (Basic, constant-time key check), the settings header decoded in a hook, and the body
// validated by the Ajv validator of its type (the same schemas segment-endpoint uses, compiled at start-up).
import { createHash, timingSafeEqual } from 'node:crypto';
import { Ajv } from 'ajv';
import Fastify from 'fastify';
import { schemas } from '../../dist/generated/validators.js';
import { API_KEY, port, ready, tls } from './common.mjs';

const ajv = new Ajv({ allowUnionTypes: true });
const validators = Object.fromEntries(
  Object.entries(schemas).map(([type, schema]) => [type, ajv.compile(schema)]),
);
const keyDigest = createHash('sha256').update(API_KEY).digest();

const app = Fastify({ https: tls, keepAliveTimeout: 65_000, logger: false });

app.addHook('onRequest', async (request, reply) => {
  const match = /^basic\s+(\S+)$/i.exec(request.headers.authorization ?? '');
  const user = match ? Buffer.from(match[1], 'base64').toString().split(':')[0] : '';
  const digest = createHash('sha256').update(user).digest();
  if (!timingSafeEqual(digest, keyDigest)) {
    return reply.code(401).send({ message: 'Invalid API key' });
  }
});

app.addHook('preHandler', async (request, reply) => {
  const header = request.headers['x-segment-settings'];
  try {
    request.settings = header ? JSON.parse(Buffer.from(header, 'base64').toString()) : {};
  } catch {
    return reply.code(400).send({ message: 'Bad X-Segment-Settings' });
  }
});

app.post('/', async (request, reply) => {
  const event = request.body;
  const validate = validators[typeof event?.type === 'string' ? event.type.toLowerCase() : ''];
  if (validate === undefined) return reply.code(501).send({ message: 'Unsupported type' });
  if (!validate(event)) return reply.code(400).send({ message: ajv.errorsText(validate.errors) });
  return reply.code(200).send();
});

await app.listen({ port, host: '127.0.0.1' });
ready(app.server);
