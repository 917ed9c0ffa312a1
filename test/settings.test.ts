import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decodeBase64 } from '../src/base64.ts';
import { decodeSettings, SettingsCache } from '../src/settings.ts';

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

describe('decodeBase64', () => {
  test('padded and unpadded base64 decode to the same bytes', () => {
    assert.equal(decodeBase64('e30=')?.toString(), '{}');
    assert.equal(decodeBase64('e30')?.toString(), '{}');
    assert.equal(decodeBase64('YQ==')?.toString(), 'a');
    assert.equal(decodeBase64('YQ')?.toString(), 'a');
    assert.equal(decodeBase64('YWJj')?.toString(), 'abc');
  });

  test('the empty string is zero bytes', () => {
    assert.equal(decodeBase64('')?.length, 0);
  });

  test('the whole standard alphabet, + and / included', () => {
    const bytes = Buffer.from([0xfb, 0xff, 0xbf]);
    assert.deepEqual(decodeBase64('+/+/'), bytes);
  });

  test('characters outside the alphabet are refused, not skipped as Node would', () => {
    assert.ok(Buffer.from('e30$', 'base64').length > 0, "Node's decoder is lenient: the point of the check");
    for (const text of ['e30$', 'e3 0=', ' e30=', 'e30=\n', 'e3-0', 'e3_0', 'e30.']) {
      assert.equal(decodeBase64(text), undefined, JSON.stringify(text));
    }
  });

  test('bad padding is refused: length % 4 == 1, "=" in the middle, too much padding', () => {
    for (const text of ['e', 'e30=e', 'e=30', 'YQ==YQ==', 'YQ=', 'YWJj=', 'e30==', '====', '=']) {
      assert.equal(decodeBase64(text), undefined, JSON.stringify(text));
    }
  });
});

describe('decodeSettings', () => {
  test('absent or empty is {}', () => {
    assert.deepEqual(decodeSettings(undefined), {});
    assert.deepEqual(decodeSettings(''), {});
  });

  test('base64 of a JSON object is that object', () => {
    const settings = { region: 'eu', retries: 3, nested: { list: [1, 'two'] } };
    assert.deepEqual(decodeSettings(b64(JSON.stringify(settings))), settings);
    assert.deepEqual(decodeSettings(b64('{}')), {});
  });

  test('unpadded base64 is accepted', () => {
    const padded = b64('{"a":1}');
    assert.ok(padded.endsWith('='), 'the sample must need padding');
    assert.deepEqual(decodeSettings(padded.replace(/=+$/, '')), { a: 1 });
  });

  test('base64 of JSON that is not an object is undefined', () => {
    for (const json of ['[]', '[{"a":1}]', '"text"', '42', 'true', 'null']) {
      assert.equal(decodeSettings(b64(json)), undefined, json);
    }
  });

  test('base64 of invalid JSON is undefined', () => {
    for (const text of ['{', '{a:1}', 'not json', "{'a':1}"]) {
      assert.equal(decodeSettings(b64(text)), undefined, text);
    }
  });

  test('base64 of bytes that are not UTF-8 is undefined, even when replacement would make it JSON', () => {
    // {"a":"\xff"}: read leniently, {"a":"\ufffd"}.
    const bytes = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]);
    assert.equal(decodeSettings(bytes.toString('base64')), undefined);
    assert.deepEqual(decodeSettings(b64('{"a":"é"}')), { a: 'é' });
  });

  test('junk characters in the base64 are undefined', () => {
    assert.equal(decodeSettings('e30$'), undefined);
    assert.equal(decodeSettings('e3 0='), undefined);
  });

  test('bad padding is undefined: length % 4 == 1, "=" in the middle', () => {
    assert.equal(decodeSettings('e30=e'), undefined);
    assert.equal(decodeSettings('e=30'), undefined);
    assert.equal(decodeSettings(`${b64('{"a":1}')}${b64('{}')}`), undefined);
  });

  test('a repeated header (an array of values) is undefined', () => {
    assert.equal(decodeSettings(['e30=', 'e30=']), undefined);
  });

  test('a __proto__ key is undefined, at the top or nested', () => {
    assert.equal(decodeSettings(b64('{"__proto__":{"admin":true}}')), undefined);
    assert.equal(decodeSettings(b64('{"a":{"__proto__":{}}}')), undefined);
  });

  test('a __proto__ key written with a JSON escape is undefined', () => {
    assert.equal(decodeSettings(b64('{"\\u005f_proto__":{"admin":true}}')), undefined);
  });
});

describe('SettingsCache', () => {
  /** A distinct settings header of `n` empty objects: small text, many values once parsed. */
  const dense = (i: number, n: number) => b64(`{"i":${i},"v":[${'{},'.repeat(n - 1)}{}]}`);

  test('a customer seen again gets the settings decoded the first time', () => {
    const cache = new SettingsCache();
    const headers = Array.from({ length: 1000 }, (_, i) =>
      b64(JSON.stringify({ customer: i, region: 'eu' })),
    );
    const first = headers.map((h) => cache.decode(h));
    assert.deepEqual(cache.decode(headers[0]), { customer: 0, region: 'eu' });
    for (const [i, h] of headers.entries()) assert.equal(cache.decode(h), first[i], `customer ${i}`);
  });

  test('customers in runs and interleaved each get their own; a header refused between them is refused again', () => {
    const cache = new SettingsCache();
    const [a, b] = [b64('{"customer":"a"}'), b64('{"customer":"b"}')];
    const order = [a, a, b, b, a, 'not base64!', a, b, 'not base64!', 'not base64!', b, ''];
    const seen = order.map((h) => cache.decode(h));
    const want = [{ customer: 'a' }, { customer: 'b' }, undefined, {}];
    const of = (h: string) => want[h === a ? 0 : h === b ? 1 : h === '' ? 3 : 2];
    for (const [i, h] of order.entries()) assert.deepEqual(seen[i], of(h), `header ${i}`);
  });

  test('what it keeps is bounded by the memory the settings take, not only by their number', () => {
    // ~11 KB of header each, ~3,600 objects once parsed (~290 KB of heap): a thousand of them held 300 MB.
    const cache = new SettingsCache();
    const kept = cache.decode(dense(0, 3600));
    for (let i = 1; i <= 100; i++) cache.decode(dense(i, 3600));
    assert.notEqual(cache.decode(dense(0, 3600)), kept, 'decoded again: let go of long before 1,024');
    assert.deepEqual(cache.decode(dense(0, 3600)), kept);
  });
});
