import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { keyAuthenticator, keyFingerprint, parseBasicAuth } from '../src/auth.ts';
import { apiKeySpec } from '../src/key-spec.ts';

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

describe('parseBasicAuth', () => {
  test("the contract's example: Basic c2VnbWVudDo= is user segment, empty password", () => {
    assert.deepEqual(parseBasicAuth('Basic c2VnbWVudDo='), { user: 'segment', pass: '' });
  });

  test('the scheme word in any case', () => {
    for (const scheme of ['basic', 'BASIC', 'bAsIc']) {
      assert.deepEqual(parseBasicAuth(`${scheme} c2VnbWVudDo=`), { user: 'segment', pass: '' }, scheme);
    }
  });

  test('tabs and extra spaces around the token', () => {
    assert.deepEqual(parseBasicAuth('Basic \t c2VnbWVudDo= '), { user: 'segment', pass: '' });
  });

  test('a token with no colon (base64 of just the key) is all username', () => {
    assert.deepEqual(parseBasicAuth(`Basic ${b64('segment')}`), { user: 'segment', pass: '' });
  });

  test('only the first colon splits: the rest is the password', () => {
    assert.deepEqual(parseBasicAuth(`Basic ${b64('key:pa:ss')}`), { user: 'key', pass: 'pa:ss' });
  });

  test('unpadded base64 is accepted', () => {
    assert.deepEqual(parseBasicAuth('Basic c2VnbWVudDo'), { user: 'segment', pass: '' });
  });

  test('UTF-8 credentials decode as UTF-8', () => {
    assert.deepEqual(parseBasicAuth(`Basic ${b64('clé:mot')}`), { user: 'clé', pass: 'mot' });
  });

  test('a username with a control character is not one (RFC 7617): undefined', () => {
    // A newline in a key would also make ("a", "b\nc") and ("a\nb", "c") one event to the duplicate
    // filter, whose key is the API key, a newline, the messageId.
    for (const user of ['a\nb', 'tab\there', 'nul\u0000', 'del\u007f']) {
      assert.equal(parseBasicAuth(`Basic ${b64(`${user}:`)}`), undefined, JSON.stringify(user));
    }
    assert.throws(
      () => apiKeySpec('a\nb', 'options.apiKeys[0]'),
      /options.apiKeys\[0\]: .*control character/,
    );
  });

  test('a key with a lone surrogate is refused: it could never be sent, and one with U+FFFD in its place would match it', () => {
    // Keys are hashed as UTF-8, where a lone surrogate becomes U+FFFD; a sender's key is decoded from
    // UTF-8 bytes, so it never holds one, but "a\uFFFD" would have been taken for "a\uD800".
    assert.throws(() => apiKeySpec('a\uD800', 'options.apiKeys[0]'), /options.apiKeys\[0\]: .*well-formed/);
    assert.equal(keyAuthenticator(['a\uFFFD'])('a\uFFFD'), 'allow');
  });

  test('junk, wrong scheme and empty headers give undefined', () => {
    const bad = [
      undefined,
      '',
      'Basic',
      'Basic ',
      'Basic    ',
      'c2VnbWVudDo=', // no scheme
      'Bearer c2VnbWVudDo=',
      'Basicc2VnbWVudDo=', // no space after the scheme
      'Basic c2VnbWVudDo= extra',
      'Basic !!!!',
      'Basic c2VnbW$VudDo=', // Node's decoder would skip the `$`
      'Basic c2VnbWVudDo=x', // padding in the middle
      'Basic c2VnbWVudDo-', // base64url alphabet
      'Basic a', // length % 4 == 1
    ];
    for (const header of bad) assert.equal(parseBasicAuth(header), undefined, JSON.stringify(header));
  });

  test('never throws, even on values that are not strings', () => {
    for (const header of [null, 42, {}, ['Basic c2VnbWVudDo='], 'Basic '.padEnd(100_000, ' ')]) {
      assert.doesNotThrow(() => parseBasicAuth(header as string));
    }
  });
});

describe('keyAuthenticator', () => {
  test('a key given twice with other types, secret or rate is refused; the same spec twice is one', () => {
    assert.throws(() => keyAuthenticator([{ key: 'k', types: ['track'] }, 'other', 'k']), {
      name: 'TypeError',
      message: /apiKeys\[2\] gives the key of apiKeys\[0\]/,
    });
    assert.throws(
      () =>
        keyAuthenticator([
          { key: 'k', signatureSecret: 'a' },
          { key: 'k', signatureSecret: 'b' },
        ]),
      TypeError,
    );
    const same = keyAuthenticator([
      { key: 'k', types: ['track', 'page'] },
      { key: 'k', types: ['page', 'track'] },
    ]);
    assert.deepEqual(same('k'), { allow: ['track', 'page'] });
    assert.equal(keyAuthenticator(['k', 'k'])('k'), 'allow');
  });

  test('a known key is allowed, an unknown one is unknown', () => {
    const authenticate = keyAuthenticator(['k1', 'k2']);
    assert.equal(authenticate('k1'), 'allow');
    assert.equal(authenticate('k2'), 'allow');
    assert.equal(authenticate('k3'), 'unknown');
    assert.equal(authenticate(''), 'unknown');
  });

  test('a key limited to some types gives { allow: types }', () => {
    const authenticate = keyAuthenticator([{ key: 'limited', types: ['track', 'identify'] }, 'full']);
    assert.deepEqual(authenticate('limited'), { allow: ['track', 'identify'] });
    assert.equal(authenticate('full'), 'allow');
  });

  test('a spec object without types allows every type', () => {
    assert.equal(keyAuthenticator([{ key: 'k' }])('k'), 'allow');
  });

  test('the types list is a frozen copy: later changes to the input do not widen it', () => {
    const types: Array<'track' | 'identify'> = ['track'];
    const authenticate = keyAuthenticator([{ key: 'k', types }]);
    types.push('identify');
    const decision = authenticate('k') as { allow: readonly string[] };
    assert.deepEqual(decision.allow, ['track']);
    assert.ok(Object.isFrozen(decision.allow));
  });

  test('keys that share a prefix are told apart', () => {
    const authenticate = keyAuthenticator(['abc', { key: 'abcdef', types: ['track'] }]);
    assert.equal(authenticate('abc'), 'allow');
    assert.deepEqual(authenticate('abcdef'), { allow: ['track'] });
    assert.equal(authenticate('ab'), 'unknown');
    assert.equal(authenticate('abcd'), 'unknown');
    assert.equal(authenticate('abcdefg'), 'unknown');
  });

  test('keys are compared exactly: case and surrounding spaces matter', () => {
    const authenticate = keyAuthenticator(['Secret']);
    assert.equal(authenticate('secret'), 'unknown');
    assert.equal(authenticate(' Secret'), 'unknown');
  });

  test('no keys: everything is unknown', () => {
    assert.equal(keyAuthenticator([])('anything'), 'unknown');
  });
});

describe('keyFingerprint', () => {
  test('is 12 lower-case hex characters', () => {
    assert.match(keyFingerprint('segment'), /^[0-9a-f]{12}$/);
    assert.match(keyFingerprint(''), /^[0-9a-f]{12}$/);
  });

  test('is stable for a key and differs between keys', () => {
    assert.equal(keyFingerprint('segment'), keyFingerprint('segment'));
    assert.notEqual(keyFingerprint('segment'), keyFingerprint('segment2'));
  });

  test('does not contain the key', () => {
    for (const key of ['abc', 'deadbeef', '0123456789ab', 'cafe']) {
      assert.ok(!keyFingerprint(key).includes(key), key);
    }
  });
});
