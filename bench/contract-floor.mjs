// The contract floor: the plainest handler that does the work the partner contract asks of every event
// (../shared/CONTRACT.md), for the pipeline benchmark's `limit` group. Where the parse floor stops at
// reading the event, it also
// - takes POST only (405), and a body of 512 KB at most (413);
// - reads the API key from its Basic header (any casing of the scheme, the password empty or absent)
//   and compares it in constant time (the parse floor's `===` on the header leaks, through timing, how
//   much of a guess is right);
// - refuses a settings header that is not a JSON object;
// - refuses the keys that poison prototypes as fastify's own body parser does (secure-json-parse's two
//   patterns, escapes included, on the text; a walk only when one matches);
// - finds the fields under any casing ("userId", "user_id", "UserId"; "Track"), at the top level,
//   leaving the event as sent (a copy when a field must be renamed);
// - validates the event against the contract's schemas (ours' validators from dist/: the Spec's seven
//   types, null where a field may be null, userId or anonymousId), 501 for a type it does not know;
// - with `filter`, processes each messageId once, remembering the last 100,000 (a Set, emptied in
//   order through a ring): the contract says a retry brings the same messageId again, not that an
//   endpoint must drop it, so the floor of the contract is without, ours' like for like with;
// - calls the partner's function for the type (a promise awaited), 500 when it fails;
// - answers a refusal with a JSON message.
// Ours does more (limits on depth, stored size and time, numbers past a double, rates, CPU shares,
// metrics, answers written together): this floor's net against fastify's is about the least an
// endpoint of the contract costs here.
import { timingSafeEqual } from 'node:crypto';

const dist = new URL('../dist/', import.meta.url);
const { eventValidators } = await import(new URL('validate.js', dist).href);

// The Spec's top-level fields: a key spelt as one of them is passed over, any other looked up squashed.
const FIELDS = [
  ...['type', 'messageId', 'userId', 'anonymousId', 'groupId', 'previousId', 'event', 'name', 'category'],
  ...['traits', 'properties', 'context', 'integrations', 'timestamp', 'originalTimestamp', 'sentAt'],
  ...['receivedAt', 'version', 'channel', 'projectId'],
];
const CANONICAL = new Set(FIELDS);
const BY_SQUASHED = new Map(FIELDS.map((field) => [field.toLowerCase(), field]));
// secure-json-parse's (fastify's body parser): the names, or any of their letters written as \u escapes.
const PROTO =
  /"(?:_|\\u005[Ff])(?:_|\\u005[Ff])(?:p|\\u0070)(?:r|\\u0072)(?:o|\\u006[Ff])(?:t|\\u0074)(?:o|\\u006[Ff])(?:_|\\u005[Ff])(?:_|\\u005[Ff])"\s*:/;
const CONSTRUCTOR =
  /"(?:c|\\u0063)(?:o|\\u006[Ff])(?:n|\\u006[Ee])(?:s|\\u0073)(?:t|\\u0074)(?:r|\\u0072)(?:u|\\u0075)(?:c|\\u0063)(?:t|\\u0074)(?:o|\\u006[Ff])(?:r|\\u0072)"\s*:/;
const REMEMBERED = 100_000;
const MAX_BYTES = 512 * 1024;

/** Whether a parsed value holds a `__proto__` key, or a `constructor` holding a `prototype`. */
function poisoned(node) {
  if (typeof node !== 'object' || node === null) return false;
  if (Object.hasOwn(node, '__proto__')) return true;
  const ctor = Object.hasOwn(node, 'constructor') ? node.constructor : undefined;
  if (typeof ctor === 'object' && ctor !== null && Object.hasOwn(ctor, 'prototype')) return true;
  return Object.values(node).some(poisoned);
}

/**
 * The event with its top-level fields under their canonical names and its type in lower case: the event
 * itself when it has them so, else a copy (the customer's data stays as sent).
 */
function canonical(event) {
  let copy;
  for (const key in event) {
    if (CANONICAL.has(key)) continue;
    const field = BY_SQUASHED.get(key.replace(/[_-]/g, '').toLowerCase());
    if (field !== undefined && !Object.hasOwn(event, field)) {
      copy ??= { ...event };
      copy[field] = event[key];
    }
  }
  const { type } = copy ?? event;
  if (typeof type === 'string' && type !== type.toLowerCase()) {
    copy ??= { ...event };
    copy.type = type.toLowerCase();
  }
  return copy ?? event;
}

/** The API key of a Basic Authorization header (the user name; the password is empty), if any. */
function basicKey(header) {
  const space = header?.indexOf(' ') ?? -1;
  if (space === -1 || header.slice(0, space).toLowerCase() !== 'basic') return undefined;
  const decoded = Buffer.from(header.slice(space + 1).trim(), 'base64').toString();
  const colon = decoded.indexOf(':');
  return colon === -1 ? decoded : decoded.slice(0, colon);
}

/** An answer: empty, or a refusal's JSON message. */
function answer(res, status, message) {
  if (message === undefined) return res.writeHead(status, { 'content-length': '0' }).end();
  const body = JSON.stringify({ message });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

class Refused extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * A `(req, res)` handler for `apiKey`, calling `handlers[type](event)`; with `filter`, once a messageId.
 * `ok(res)` writes a success (at once by default; anchors/contract-batched.mjs writes a turn's together).
 */
export function contractFloor(apiKey, handlers, { filter = false, ok } = {}) {
  const expected = Buffer.from(apiKey);
  const validators = eventValidators();
  const seen = new Set();
  const ring = new Array(REMEMBERED);
  let next = 0;
  const success = ok ?? ((res) => answer(res, 200));
  const eventOf = (req, text) => {
    const given = Buffer.from(basicKey(req.headers.authorization) ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new Refused(401, 'Invalid API key');
    }
    const settings = JSON.parse(
      Buffer.from(req.headers['x-segment-settings'] || 'e30=', 'base64').toString(),
    );
    if (typeof settings !== 'object' || settings === null || Array.isArray(settings)) {
      throw new Refused(400, 'The settings header is not a JSON object');
    }
    const parsed = JSON.parse(text);
    if ((PROTO.test(text) || CONSTRUCTOR.test(text)) && poisoned(parsed))
      throw new Refused(400, 'Forbidden key');
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new Refused(400, 'Not an event');
    const event = canonical(parsed);
    const validate = validators[event.type];
    const handler = Object.hasOwn(handlers, event.type) ? handlers[event.type] : undefined;
    if (validate === undefined || handler === undefined) throw new Refused(501, 'Unsupported type');
    const problem = validate(event);
    if (problem !== undefined) throw new Refused(400, problem);
    return { event, handler };
  };
  const take = (req, res, text) => {
    let found;
    try {
      found = eventOf(req, text);
    } catch (err) {
      if (err instanceof Refused) return answer(res, err.status, err.message);
      return answer(res, err instanceof SyntaxError ? 400 : 500, err.message);
    }
    const { event, handler } = found;
    const { messageId } = event;
    const id = filter && typeof messageId === 'string' && messageId !== '' ? messageId : undefined;
    if (id !== undefined && seen.has(id)) return success(res);
    const done = () => {
      if (id !== undefined) {
        const old = ring[next];
        if (old !== undefined) seen.delete(old);
        ring[next] = id;
        next = (next + 1) % REMEMBERED;
        seen.add(id);
      }
      success(res);
    };
    const failed = () => answer(res, 500, 'The handler failed');
    try {
      const result = handler(event);
      if (typeof result?.then === 'function') result.then(done, failed);
      else done();
    } catch {
      failed();
    }
  };
  return (req, res) => {
    if (req.method !== 'POST') return answer(res, 405, 'POST only');
    const chunks = [];
    let bytes = 0;
    req.on('data', (chunk) => {
      bytes += chunk.length;
      if (bytes <= MAX_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      if (bytes > MAX_BYTES) answer(res, 413, 'Request body too large');
      else take(req, res, Buffer.concat(chunks).toString());
    });
  };
}
