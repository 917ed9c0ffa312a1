import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findPoisonedKey, parsedNestsDeeper, parseJson, serializedBytes } from '../src/json.ts';

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
