import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, test } from 'node:test';
import type { EndpointError } from '../src/errors.ts';
import { framedBody } from '../src/framed-body.ts';
import { parseJson } from '../src/json.ts';
import { findPoisonedKey, parsedNestsDeeper, serializedBytes } from '../src/json-walks.ts';

const codeOf = (text: string): string | undefined => {
  const result = parseJson(text);
  return result.ok ? undefined : result.code;
};

describe('parseJson', () => {
  test('valid JSON gives its value', () => {
    assert.deepEqual(parseJson('{"type":"track","n":[1,2]}'), {
      ok: true,
      value: { type: 'track', n: [1, 2] },
    });
    assert.deepEqual(parseJson('[1]'), { ok: true, value: [1] });
    assert.deepEqual(parseJson('null'), { ok: true, value: null });
  });

  test('invalid JSON is SEG_INVALID_JSON with a message', () => {
    for (const text of ['', '{', '{"a":1,}', "{'a':1}", 'undefined', '{"a":1} x']) {
      const result = parseJson(text);
      assert.equal(result.ok, false, JSON.stringify(text));
      if (!result.ok) {
        assert.equal(result.code, 'SEG_INVALID_JSON');
        assert.match(result.message, /not valid JSON/);
      }
    }
  });

  test('a top-level __proto__ key is SEG_FORBIDDEN_KEY', () => {
    assert.equal(codeOf('{"__proto__":{"x":1}}'), 'SEG_FORBIDDEN_KEY');
  });

  test('a nested __proto__ key, inside objects and arrays, is SEG_FORBIDDEN_KEY', () => {
    assert.equal(codeOf('{"a":{"b":[{"__proto__":{}}]}}'), 'SEG_FORBIDDEN_KEY');
    assert.equal(codeOf('[[{"__proto__":null}]]'), 'SEG_FORBIDDEN_KEY');
  });

  test('the message names where the forbidden key is', () => {
    const result = parseJson('{"a":{"b":[{"__proto__":{}}]}}');
    assert.equal(result.ok, false);
    if (!result.ok) assert.match(result.message, /a\.b\[0\]\.__proto__/);
  });

  test('constructor with a prototype inside is SEG_FORBIDDEN_KEY', () => {
    assert.equal(codeOf('{"constructor":{"prototype":{}}}'), 'SEG_FORBIDDEN_KEY');
    assert.equal(codeOf('{"properties":{"constructor":{"prototype":{"x":1}}}}'), 'SEG_FORBIDDEN_KEY');
  });

  test('"constructor" as a plain key, and the words inside string values, are fine', () => {
    for (const text of [
      '{"constructor":"x"}',
      '{"constructor":{"name":"Object"}}',
      '{"event":"__proto__"}',
      '{"properties":{"note":"constructor.prototype"}}',
      '{"list":["__proto__","constructor"]}',
      '{"prototype":{}}',
    ]) {
      assert.equal(parseJson(text).ok, true, text);
    }
  });

  test('parsing a __proto__ body pollutes nothing', () => {
    parseJson('{"__proto__":{"polluted":1}}');
    parseJson('{"constructor":{"prototype":{"polluted":1}}}');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.hasOwn(Object.prototype, 'polluted'), false);
  });

  test('a __proto__ key written with a JSON escape (\\u005f_proto__) is SEG_FORBIDDEN_KEY', () => {
    assert.equal(codeOf('{"\\u005f_proto__":{"x":1}}'), 'SEG_FORBIDDEN_KEY');
  });

  test('a constructor key written with a JSON escape (\\u0063onstructor) is SEG_FORBIDDEN_KEY', () => {
    assert.equal(codeOf('{"\\u0063onstructor":{"prototype":{"x":1}}}'), 'SEG_FORBIDDEN_KEY');
  });

  test('a key written with every letter escaped, in either case of hex, or spaced from its colon', () => {
    const escaped = (word: string, hex: (h: string) => string) =>
      [...word].map((c) => `\\u${hex(c.charCodeAt(0).toString(16).padStart(4, '0'))}`).join('');
    for (const hex of [(h: string) => h, (h: string) => h.toUpperCase()]) {
      assert.equal(codeOf(`{"a":[{"${escaped('__proto__', hex)}":{}}]}`), 'SEG_FORBIDDEN_KEY');
      assert.equal(codeOf(`{"${escaped('constructor', hex)}" \n\t:{"prototype":1}}`), 'SEG_FORBIDDEN_KEY');
    }
  });

  test('a forbidden key and a number past a double in one body: the key is what is named', () => {
    const result = parseJson('{"n":1e400,"p":{"__proto__":{}}}');
    assert.equal(result.ok ? 'ok' : result.code, 'SEG_FORBIDDEN_KEY');
    if (!result.ok) assert.match(result.message, /p\.__proto__/);
  });
});

describe('findPoisonedKey', () => {
  test('the path of the first forbidden key', () => {
    assert.equal(findPoisonedKey(JSON.parse('{"__proto__":{}}')), '__proto__');
    assert.equal(findPoisonedKey(JSON.parse('{"a":{"b":[{"__proto__":{}}]}}')), 'a.b[0].__proto__');
    assert.equal(
      findPoisonedKey(JSON.parse('{"x":{"constructor":{"prototype":1}}}')),
      'x.constructor.prototype',
    );
  });

  test('undefined for clean values, primitives included', () => {
    for (const value of [{}, [], null, 1, 'str', { a: [{ b: 'c' }] }, { constructor: 'x' }]) {
      assert.equal(findPoisonedKey(value), undefined, JSON.stringify(value));
    }
  });

  test('a deeply nested value does not overflow the stack', () => {
    const depth = 100_000;
    const text = `${'{"a":'.repeat(depth)}{"__proto__":1}${'}'.repeat(depth)}`;
    assert.match(findPoisonedKey(JSON.parse(text)) ?? '', /__proto__$/);
  });
});

describe('serializedBytes and parsedNestsDeeper', () => {
  test('count what JSON.stringify writes of a parsed value, in UTF-8 bytes, without recursion', () => {
    const texts = [
      '{}',
      '[]',
      'null',
      '"é \\u0000 \\" \\\\ \\ud800 😀"',
      '{"a":[1,-0,1e21,true,false,null,{}],"é":{"":[]},"__proto__":{"x":"y"}}',
      '[[[[{"k":["v",2.5]}]]]]',
    ];
    for (const text of texts) {
      const value = JSON.parse(text);
      assert.equal(serializedBytes(value, 1e6), Buffer.byteLength(JSON.stringify(value)), text);
    }
    // Nested past the stack: JSON.stringify throws, the count does not.
    const deep = JSON.parse(`${'['.repeat(200_000)}${']'.repeat(200_000)}`);
    assert.throws(() => JSON.stringify(deep), RangeError);
    assert.equal(serializedBytes(deep, 1e6), 400_000);
    assert.ok(parsedNestsDeeper(deep, 64));
    // It stops once past the limit.
    assert.ok(serializedBytes(deep, 100) > 100);
    assert.equal(parsedNestsDeeper(JSON.parse('{"a":[[1]]}'), 3), false);
    assert.equal(parsedNestsDeeper(JSON.parse('{"a":[[1]]}'), 2), true);
  });
});

describe('a framework-parsed body', () => {
  test('taken as JSON.stringify writes it; one it cannot write is a 500, retried', () => {
    const limits = { maxBodyBytes: 1 << 20, bodyTimeoutMs: 1000, maxDepth: 64 };
    const parsedReq = (body: unknown) =>
      ({ body, readableDidRead: true, readableEnded: true, headers: {} }) as unknown as IncomingMessage;
    const at = new Date('2026-11-26T10:00:00.000Z');
    const framed = framedBody(parsedReq({ type: 'track', timestamp: at, skip: undefined }), limits);
    assert.deepEqual(framed?.value, { type: 'track', timestamp: '2026-11-26T10:00:00.000Z' });
    assert.throws(
      () => framedBody(parsedReq({ type: 'track', n: 1n }), limits),
      (err: EndpointError) => err.code === 'SEG_INTERNAL',
    );
    // A reviver's NaN: null, as JSON.stringify writes it (the handler saw NaN, the store wrote null).
    assert.deepEqual(framedBody(parsedReq({ type: 'track', n: Number.NaN }), limits)?.value, {
      type: 'track',
      n: null,
    });
    // A body JSON.stringify writes as nothing, or cannot write (a cycle), is the host's bug, not the
    // sender's: a 500, retried, its cause logged; never a final 400.
    const loop: Record<string, unknown> = { type: 'track' };
    loop.self = loop;
    for (const broken of [{ toJSON: () => undefined }, loop]) {
      assert.throws(
        () => framedBody(parsedReq(broken), limits),
        (err: EndpointError) => err.code === 'SEG_INTERNAL',
      );
    }
    // Written again, it is held to the size limit as a body read here is.
    const swollen = { type: 'track', p: { toJSON: () => 'x'.repeat(limits.maxBodyBytes) } };
    assert.throws(
      () => framedBody(parsedReq(swollen), limits),
      (err: EndpointError) => err.code === 'SEG_BODY_TOO_LARGE',
    );
    // A body truly nested too deep is still the sender's 400.
    let deep: unknown = {};
    for (let i = 0; i < 100; i++) deep = { deep };
    assert.throws(
      () => framedBody(parsedReq(deep), limits),
      (err: EndpointError) => err.code === 'SEG_TOO_DEEP',
    );
    // What toJSON writes is checked as a body read here is.
    const poisoned = { type: 'track', p: { toJSON: () => JSON.parse('{"__proto__":{"x":1}}') } };
    assert.throws(
      () => framedBody(parsedReq(poisoned), limits),
      (err: EndpointError) => err.code === 'SEG_FORBIDDEN_KEY',
    );
  });

  const limits = { maxBodyBytes: 1000, bodyTimeoutMs: 1000, maxDepth: 64 };
  const parsedReq = (body: unknown) =>
    ({ body, readableDidRead: true, readableEnded: true, headers: {} }) as unknown as IncomingMessage;
  const code = (body: unknown) => {
    try {
      framedBody(parsedReq(body), limits);
      return 'taken';
    } catch (err) {
      return (err as EndpointError).code;
    }
  };

  test('a plain object the host parsed is held to the size limit as written, as any body is', () => {
    // Nothing in it JSON lacks, it was not written again, and so never measured: a 5 MB event went on.
    assert.equal(
      code({ type: 'track', event: 'E', userId: 'u', pad: 'x'.repeat(2000) }),
      'SEG_BODY_TOO_LARGE',
    );
    assert.equal(code({ type: 'track', event: 'E', userId: 'u', pad: 'x'.repeat(900) }), 'taken');
  });

  test("what is handed on is what the body writes as, a non-enumerable toJSON's too", () => {
    // A toJSON nobody walks (not enumerable) decided what the store wrote, not what was checked: a track
    // handled, an alias stored, and a poisoned key the check never saw.
    const hidden = (body: object, written: unknown) =>
      Object.defineProperty(body, 'toJSON', { value: () => written, enumerable: false });
    const alias = { type: 'alias', userId: 'u', previousId: 'p' };
    const framed = framedBody(parsedReq(hidden({ type: 'track', event: 'E', userId: 'u' }, alias)), limits);
    assert.deepEqual(framed?.value, alias);
    const poison = JSON.parse('{"type":"track","__proto__":{"polluted":1}}');
    assert.equal(code(hidden({ type: 'track', event: 'E', userId: 'u' }, poison)), 'SEG_FORBIDDEN_KEY');
  });

  test("a body the host's own code cannot write (a RangeError from a getter or a toJSON) is its 500", () => {
    // Nested within the limit, a RangeError is not the stack's: it was a final 400, "not valid JSON".
    const badTime = { type: 'track', event: 'E', userId: 'u', timestamp: new Date('garbage') };
    const when = { toJSON: () => (badTime.timestamp as Date).toISOString() };
    assert.equal(code({ type: 'track', event: 'E', userId: 'u', timestamp: when }), 'SEG_INTERNAL');
    const getter = Object.defineProperty({ type: 'track', event: 'E', userId: 'u' }, 'ts', {
      enumerable: true,
      get() {
        throw new RangeError('out of range');
      },
    });
    assert.equal(code(getter), 'SEG_INTERNAL');
  });

  test("a body the host left as bytes in a typed array or an ArrayBuffer is read as the body's text", () => {
    // Written as {"0":123,...} it was a final 400 (no type), and the event lost.
    const bytes = new TextEncoder().encode('{"type":"track","event":"E","userId":"u"}');
    const event = { type: 'track', event: 'E', userId: 'u' };
    for (const body of [bytes, bytes.buffer, new DataView(bytes.buffer)]) {
      assert.deepEqual(framedBody(parsedReq(body), limits)?.value, event);
    }
    assert.equal(code(new Uint8Array(2000).fill(0x20)), 'SEG_BODY_TOO_LARGE');
  });
});
