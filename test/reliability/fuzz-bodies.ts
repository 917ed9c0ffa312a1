// Fuzz generators for bodies: random bytes, invalid UTF-8, broken, deep or huge JSON, __proto__ keys,
// fields of the wrong type, unknown types, sizes over and at the limit, no body, and an unknown key.
import { EVENT_TYPES } from '../../src/index.ts';
import {
  ALNUM,
  type Case,
  chunked,
  type Generator,
  http,
  KEY,
  MAX_BODY,
  type Rng,
  segmentHeaders,
  serialise,
  UNKNOWN_KEY,
  validEvent,
} from './fuzz-cases.ts';

const body = (
  generator: string,
  bytes: Buffer,
  expect: readonly number[],
  codes?: readonly string[],
): Case => {
  // The size decides before anything else does: one byte over the limit is a 413 whatever it holds.
  if (bytes.length > MAX_BODY) {
    return {
      generator: `${generator}/too-large`,
      expect: [413],
      codes: ['SEG_BODY_TOO_LARGE'],
      http: http(bytes),
    };
  }
  return { generator, expect, codes, http: http(bytes) };
};

export const bodyRandomBytes: Generator = (r) =>
  body('body-random-bytes', r.bytes(r.logInt(1, 16 * 1024)), [400]);

export const invalidUtf8: Generator = (r) => {
  const text = JSON.stringify(validEvent(r));
  const at = text.indexOf('"', text.indexOf(':') + 1) + 1; // inside the first string value
  const bad = r.pick([
    [0xc3, 0x28],
    [0xff],
    [0xed, 0xa0, 0x80],
    [0xc0, 0xaf],
    [0xe2, 0x82],
    [0x80],
    [0xf8, 0x88, 0x80, 0x80, 0x80],
  ]);
  const bytes = Buffer.concat([
    Buffer.from(text.slice(0, at)),
    Buffer.from(bad),
    Buffer.from(text.slice(at)),
  ]);
  return body('invalid-utf8', bytes, [400], ['SEG_INVALID_UTF8']);
};

export const truncatedJson: Generator = (r) => {
  const text = JSON.stringify(validEvent(r));
  return body(
    'truncated-json',
    Buffer.from(text.slice(0, r.int(0, text.length - 1))),
    [400],
    ['SEG_INVALID_JSON'],
  );
};

// A JSON array on the event path is a batch (Webhooks batching): an empty one, or one of things that are
// not events, is refused; an array of valid events is not malformed, so it is not generated here.
export const notAnObject: Generator = (r) => {
  const shape = r.int(0, 2);
  if (shape === 0) {
    const text = r.pick(['"track"', '42', '-1.5e300', 'null', 'true', 'false', '""']);
    return body('json-not-object', Buffer.from(text), [400], ['SEG_NOT_OBJECT']);
  }
  if (shape === 1)
    return body('json-empty-batch', Buffer.from(r.pick(['[]', ' [ ] '])), [400], ['SEG_INVALID_EVENT']);
  const text = r.pick(['[1]', '["track"]', '[null,{}]', '[[],[{}]]', '[{"type":"track"}]']);
  return body('json-bad-batch', Buffer.from(text), [400], ['SEG_BATCH_REFUSED']);
};

/** Nesting from one past the limit (64) to 100 000 levels, balanced or not, alone or inside an event. */
export const deepJson: Generator = (r) => {
  const depth = r.logInt(65, 100_000);
  const shape = r.int(0, 3);
  let text: string;
  if (shape === 0) text = `${'['.repeat(depth)}${']'.repeat(depth)}`;
  else if (shape === 1) text = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
  else if (shape === 2) text = '['.repeat(depth);
  else {
    // Inside a valid event: the event is one level, so depth - 1 more make it one too many at least.
    const event = JSON.stringify(validEvent(r));
    text = `${event.slice(0, -1)},"properties":${'['.repeat(depth - 1)}${']'.repeat(depth - 1)}}`;
  }
  // An array is a batch: each of its events is held to the limit on its own (a refused one listed in
  // SEG_BATCH_REFUSED), the body as a whole to twice the limit; unbalanced within that, JSON.parse's.
  const batch = (shape === 0 || shape === 2) && depth <= 2 * 64;
  const codes = !batch ? ['SEG_TOO_DEEP'] : shape === 0 ? ['SEG_BATCH_REFUSED'] : ['SEG_INVALID_JSON'];
  return body(`deep-json/${shape}`, Buffer.from(text), [400], codes);
};

/** Tens of thousands of keys, in an event that is invalid for another reason (no `event`, or no type). */
export const manyKeys: Generator = (r) => {
  const count = r.int(5_000, 40_000);
  const keys: string[] = [];
  for (let i = 0; i < count; i++) keys.push(`"${r.pick(['k', 'user_id_', 'Type', 'x'])}${i}":${i}`);
  const where = r.int(0, 2);
  let text: string;
  let codes: string[];
  if (where === 0) {
    text = `{${keys.join(',')}}`;
    codes = ['SEG_TYPE_MISSING'];
  } else if (where === 1) {
    text = `{"type":"track","userId":"u1",${keys.join(',')}}`;
    codes = ['SEG_INVALID_EVENT'];
  } else {
    text = `{"type":"track","userId":"u1","properties":{${keys.join(',')}}}`;
    codes = ['SEG_INVALID_EVENT'];
  }
  return body('many-keys', Buffer.from(text), [400], codes);
};

/** A JSON key spelling `name`, each letter possibly as a \u escape in either hex case. */
function spell(r: Rng, name: string): string {
  let out = '"';
  for (const ch of name) {
    if (r.chance(0.35)) {
      const hex = ch.charCodeAt(0).toString(16).padStart(4, '0');
      out += `\\u${r.chance(0.5) ? hex : hex.toUpperCase()}`;
    } else {
      out += ch;
    }
  }
  return `${out}"`;
}

/** `__proto__`, or `constructor` holding `prototype`, anywhere in an otherwise valid event. */
export const protoKeys: Generator = (r) => {
  const poison = r.chance(0.5)
    ? `${spell(r, '__proto__')}${r.pick(['', ' ', '\n'])}:{"admin":true}`
    : `${spell(r, 'constructor')}:{${spell(r, 'prototype')}:{"admin":true}}`;
  const event = validEvent(r);
  const text = JSON.stringify(event);
  const where = r.int(0, 3);
  let out: string;
  if (where === 0) out = `{${poison},${text.slice(1)}`;
  else if (where === 1) out = `${text.slice(0, -1)},${poison}}`;
  else if (where === 2) out = `${text.slice(0, -1)},"properties":{"a":[1,{"b":{${poison}}}]}}`;
  else out = `${text.slice(0, -1)},"context":{${poison}}}`;
  return body('proto-key', Buffer.from(out), [400], ['SEG_FORBIDDEN_KEY']);
};

/** Fields of the wrong type, or missing, one per event. */
export const wrongFieldTypes: Generator = (r) => {
  const event = validEvent(r);
  const type = event.type as string;
  // Each breaker sets fields (undefined removes one) so that no schema can accept the event.
  const breakers: Array<[string, Record<string, readonly unknown[]>]> = [
    ['type', { type: [5, null, '', {}, [], true] }],
    ['no-ids', { userId: [undefined], anonymousId: [undefined] }],
    ['userId-type', { userId: [{}, [], true, ''] }],
    ['messageId-type', { messageId: [5, {}, [], true, 'm'.repeat(101)] }],
    ['timestamp-type', { timestamp: [5, {}, [], true] }],
    ['version-type', { version: [{}, [], true] }],
    ['channel-type', { channel: [5, {}, []] }],
  ];
  if (type === 'track') {
    breakers.push(['event', { event: [undefined, 5, null, '', {}, []] }]);
    breakers.push(['properties-type', { properties: ['p', 5, true, [1]] }]);
  }
  if (type === 'identify') breakers.push(['traits-type', { traits: ['t', 5, [1]] }]);
  if (type === 'group') breakers.push(['groupId', { groupId: [undefined, {}, '', []] }]);
  if (type === 'alias') breakers.push(['previousId', { previousId: [undefined, {}, ''] }]);
  if (type === 'page' || type === 'screen') breakers.push(['name-type', { name: [5, {}, []] }]);
  const [name, fields] = r.pick(breakers);
  for (const [field, values] of Object.entries(fields)) event[field] = r.pick(values);
  // Casing varies by sender: the same field under another spelling must be judged the same.
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(event)) {
    const key = r.chance(0.2)
      ? r.pick([k.toUpperCase(), k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)])
      : k;
    out[key] = v;
  }
  return body(
    `wrong-field/${name}`,
    Buffer.from(JSON.stringify(out)),
    [400],
    ['SEG_INVALID_EVENT', 'SEG_TYPE_MISSING'],
  );
};

/** Types Segment does not define: 501, which the sender does not retry. */
export const unknownType: Generator = (r) => {
  const event = validEvent(r);
  let type = r.pick([
    'purchase',
    'batch',
    'constructor',
    '__proto__',
    'toString',
    'hasOwnProperty',
    'valueOf',
    'trackx',
    'TRACK ',
    ' identify',
    'tr\u0430ck', // Cyrillic а
    'ıdentify', // dotless i
    r.string(r.int(1, 30), ALNUM),
  ]);
  if (EVENT_TYPES.includes(type.toLowerCase() as never)) type = 'purchase';
  event.type = type;
  return body('unknown-type', Buffer.from(JSON.stringify(event)), [501], ['SEG_TYPE_UNSUPPORTED']);
};

/** Bodies over 512 KiB: declared (refused before reading), sent whole, or chunked (counted as read). */
export const overLimit: Generator = (r) => {
  const shape = r.int(0, 3);
  const headers = segmentHeaders();
  if (shape === 0) {
    const declared = r.logInt(MAX_BODY + 1, 2 ** 40);
    headers.push(['Content-Length', String(declared)]);
    const raw = Buffer.concat([serialise(http(Buffer.alloc(0), headers)), Buffer.from('{"type":"track"')]);
    return { generator: 'over-limit/declared', expect: [413], codes: ['SEG_BODY_TOO_LARGE'], raw };
  }
  const size = shape === 1 ? MAX_BODY + 1 : r.int(MAX_BODY + 1, MAX_BODY + 200 * 1024);
  const event = JSON.stringify({ ...validEvent(r), properties: { pad: '' } });
  const text = `${event.slice(0, -3)}${'x'.repeat(Math.max(0, size - event.length))}"}}`;
  const bytes = Buffer.from(text);
  if (shape === 3) {
    headers.push(['Transfer-Encoding', 'chunked']);
    const raw = Buffer.concat([serialise(http(Buffer.alloc(0), headers)), chunked(bytes, r)]);
    return { generator: 'over-limit/chunked', expect: [413], codes: ['SEG_BODY_TOO_LARGE'], raw };
  }
  return {
    generator: shape === 1 ? 'over-limit/by-one' : 'over-limit/sent',
    expect: [413],
    codes: ['SEG_BODY_TOO_LARGE'],
    http: http(bytes),
  };
};

/** At the limit exactly, an invalid event is judged on its content (the boundary's other side). */
export const atLimit: Generator = () => {
  const prefix = '{"type":"track","userId":"u1","properties":{"pad":"';
  const text = `${prefix}${'x'.repeat(MAX_BODY - prefix.length - 3)}"}}`;
  return body('over-limit/at-limit-invalid', Buffer.from(text), [400], ['SEG_INVALID_EVENT']);
};

export const noBody: Generator = (r) => {
  if (r.chance(0.5)) return body('no-body/empty', Buffer.alloc(0), [400], ['SEG_INVALID_JSON']);
  return {
    generator: 'no-body/no-length',
    expect: [411],
    codes: ['SEG_LENGTH_REQUIRED'],
    raw: serialise({ ...http(Buffer.alloc(0)), noLength: true }),
  };
};

export const unknownKey: Generator = (r) => ({
  generator: 'unknown-key',
  expect: [401],
  codes: ['SEG_AUTH_UNKNOWN'],
  http: http(
    Buffer.from(JSON.stringify(validEvent(r))),
    segmentHeaders(r.pick([UNKNOWN_KEY, `${KEY}x`, KEY.slice(1), 'Dev-Key'])),
  ),
});
