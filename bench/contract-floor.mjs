// The contract floor: the least a handler can do that does what the partner contract asks of every
// event (../shared/CONTRACT.md), written as plainly as it can be, for the pipeline benchmark's `limit`
// group. Where the parse floor stops at reading the event, it also
// - compares the API key in constant time (the parse floor's `===` leaks, through timing, how much of a
//   guess is right);
// - refuses the keys that poison prototypes, as fastify's own body parser does (secure-json-parse: a
//   look at the text, and a walk only when one of the names is in it);
// - finds the fields under any casing ("userId", "user_id", "UserId"; "Track"), at the top level;
// - validates the event with the fastify anchor's own Ajv validators (anchors/schemas.mjs);
// - processes each messageId once, remembering the last 100,000 in a Map;
// - calls the partner's function for the type.
// Ours does all of that and more (depth and size limits, numbers past a double, rates, metrics): the
// contract floor's net against fastify's is how low any endpoint of this contract can go here.
import { timingSafeEqual } from 'node:crypto';
import { validators } from './anchors/schemas.mjs';

// The Spec's top-level fields: a key spelt as one of them is passed over, any other looked up squashed.
const FIELDS = [
  ...['type', 'messageId', 'userId', 'anonymousId', 'groupId', 'previousId', 'event', 'name', 'category'],
  ...['traits', 'properties', 'context', 'integrations', 'timestamp', 'originalTimestamp', 'sentAt'],
  ...['receivedAt', 'version', 'channel', 'projectId'],
];
const CANONICAL = new Set(FIELDS);
const BY_SQUASHED = new Map(FIELDS.map((field) => [field.toLowerCase(), field]));
const POISON = /"(?:__proto__|constructor)"\s*:/;
const REMEMBERED = 100_000;

/** Whether a parsed value holds a `__proto__` key, or a `constructor` holding a `prototype`. */
function poisoned(node) {
  if (typeof node !== 'object' || node === null) return false;
  if (Object.hasOwn(node, '__proto__')) return true;
  const ctor = Object.hasOwn(node, 'constructor') ? node.constructor : undefined;
  if (typeof ctor === 'object' && ctor !== null && Object.hasOwn(ctor, 'prototype')) return true;
  return Object.values(node).some(poisoned);
}

/** The event with its top-level fields under their canonical names and its type in lower case. */
function canonical(event) {
  for (const key in event) {
    if (CANONICAL.has(key)) continue;
    const field = BY_SQUASHED.get(key.replace(/[_-]/g, '').toLowerCase());
    if (field !== undefined && !Object.hasOwn(event, field)) event[field] = event[key];
  }
  if (typeof event.type === 'string') event.type = event.type.toLowerCase();
  return event;
}

/** A `(req, res)` handler for the API key whose Authorization header is `authorization`. */
export function contractFloor(authorization, handlers) {
  const expected = Buffer.from(authorization);
  const seen = new Map();
  const answer = (res, status) => res.writeHead(status, { 'content-length': '0' }).end();
  const take = (req, res, text) => {
    const given = Buffer.from(req.headers.authorization ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return answer(res, 401);
    JSON.parse(Buffer.from(req.headers['x-segment-settings'] || 'e30=', 'base64').toString());
    const parsed = JSON.parse(text);
    if (POISON.test(text) && poisoned(parsed)) return answer(res, 400);
    const event = canonical(parsed);
    const validate = validators[event.type];
    if (validate === undefined || !validate(event)) return answer(res, 400);
    const id = `${authorization}\n${event.messageId}`;
    if (seen.has(id)) return answer(res, 200);
    handlers[event.type](event);
    seen.set(id, true);
    if (seen.size > REMEMBERED) seen.delete(seen.keys().next().value);
    answer(res, 200);
  };
  return (req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      try {
        take(req, res, Buffer.concat(chunks).toString());
      } catch {
        answer(res, 400);
      }
    });
  };
}
