import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { field, messageIdOf, normalizeEvent } from '../src/normalize.ts';

describe('field', () => {
  test('finds a key whatever its casing or underscores', () => {
    for (const key of ['firstName', 'first_name', 'FirstName', 'FIRSTNAME', 'first-name', 'FIRST_NAME']) {
      assert.equal(field({ [key]: 'Ada' }, 'firstName'), 'Ada', key);
    }
  });

  test('the name asked for may be in any casing too', () => {
    assert.equal(field({ firstName: 'Ada' }, 'first_name'), 'Ada');
  });

  test('an exact match wins over a variant, wherever it sits in the object', () => {
    assert.equal(field({ first_name: 'variant', firstName: 'exact' }, 'firstName'), 'exact');
    assert.equal(field({ firstName: 'exact', FIRSTNAME: 'variant' }, 'FIRSTNAME'), 'variant');
  });

  test('a value that is present but falsy is returned, not skipped', () => {
    assert.equal(field({ first_name: '' }, 'firstName'), '');
    assert.equal(field({ count: 0 }, 'count'), 0);
    assert.equal(field({ Opt_In: false }, 'optIn'), false);
  });

  test('an exact match that is null or empty gives way to a variant that holds a value: it says nothing', () => {
    assert.equal(field({ firstName: null, first_name: 'Ada' }, 'firstName'), 'Ada');
    assert.equal(field({ first_name: 'Ada', firstName: '' }, 'firstName'), 'Ada');
    assert.equal(field({ firstName: null, FIRST_NAME: null, FirstName: 'Ada' }, 'firstName'), 'Ada');
    assert.equal(field({ firstName: null, first_name: '' }, 'firstName'), null);
    assert.equal(field({ firstName: undefined, first_name: 'Ada' }, 'firstName'), 'Ada');
  });

  test('a missing key is undefined; a different word is not a match', () => {
    assert.equal(field({ lastName: 'Lovelace' }, 'firstName'), undefined);
    assert.equal(field({ firstNames: 'x' }, 'firstName'), undefined);
  });

  test('own keys only: nothing from the prototype', () => {
    assert.equal(field({}, 'constructor'), undefined);
    assert.equal(field({}, 'toString'), undefined);
    assert.equal(field(Object.create({ firstName: 'inherited' }), 'firstName'), undefined);
  });

  test('non-objects give undefined', () => {
    for (const value of [undefined, null, 'firstName', 42, true]) {
      assert.equal(field(value, 'firstName'), undefined, String(value));
    }
  });
});

describe('normalizeEvent', () => {
  test('an already-canonical event is returned as is, the same object', () => {
    const event = { type: 'track', userId: 'u1', event: 'Clicked', properties: { Plan_Type: 'pro' } };
    assert.equal(normalizeEvent(event), event);
  });

  test('traits or properties sent as [] are {}, and give way to a variant that holds a map', () => {
    const sent = { type: 'identify', userId: 'u1', traits: [] };
    assert.deepEqual(normalizeEvent(sent), { type: 'identify', userId: 'u1', traits: {} });
    assert.deepEqual(sent.traits, [], 'the event as sent is not changed');
    // PHP's empty map says nothing, as null does: the variant that holds the traits is the one handed over.
    const out = normalizeEvent({ type: 'identify', userId: 'u1', traits: [], Traits: { email: 'a@b.c' } });
    assert.deepEqual(out.traits, { email: 'a@b.c' });
  });

  test('traits or properties sent as null are {} too, as README promises: a handler can read their keys', () => {
    // They reached handlers as null, where Object.keys(event.properties) threw: a 500, retried for hours
    // (found by a README walk-through).
    const sent = { type: 'track', userId: 'u1', event: 'E', properties: null };
    assert.deepEqual(normalizeEvent(sent), { type: 'track', userId: 'u1', event: 'E', properties: {} });
    assert.equal(sent.properties, null, 'the event as sent is not changed');
    assert.deepEqual(normalizeEvent({ type: 'identify', userId: 'u1', traits: null }).traits, {});
    const out = normalizeEvent({ type: 'identify', userId: 'u1', traits: null, TRAITS: { plan: 'pro' } });
    assert.deepEqual(out.traits, { plan: 'pro' });
  });

  test('UserId, user_id and USERID become userId', () => {
    for (const key of ['UserId', 'user_id', 'USERID', 'user-id']) {
      const out = normalizeEvent({ type: 'identify', [key]: 'u1' });
      assert.deepEqual(out, { type: 'identify', userId: 'u1' }, key);
    }
  });

  test('other spec fields are renamed too', () => {
    const out = normalizeEvent({
      Type: 'group',
      anonymous_id: 'a1',
      GROUP_ID: 'g1',
      MessageId: 'm1',
      original_timestamp: 'yesterday',
    });
    assert.deepEqual(out, {
      type: 'group',
      anonymousId: 'a1',
      groupId: 'g1',
      messageId: 'm1',
      originalTimestamp: 'yesterday',
    });
  });

  test('"Track" becomes "track", without touching the input', () => {
    const input = { type: 'Track', userId: 'u1', event: 'E' };
    const out = normalizeEvent(input);
    assert.equal(out.type, 'track');
    assert.equal(input.type, 'Track');
    assert.notEqual(out, input);
  });

  test('a TYPE key with a value in capitals becomes type in lower case', () => {
    assert.deepEqual(normalizeEvent({ TYPE: 'IDENTIFY', userId: 'u1' }), { type: 'identify', userId: 'u1' });
  });

  test('a non-string type is left as it is', () => {
    const event = { type: 5, userId: 'u1' };
    assert.equal(normalizeEvent(event), event);
  });

  test('keys inside traits, properties and context are never rewritten', () => {
    const traits = { first_name: 'Ada', UserId: 'inner', Type: 'Inner' };
    const properties = { Order_ID: 'o1', user_id: 'inner' };
    const context = { Traits: { USER_ID: 'x' } };
    const out = normalizeEvent({
      Type: 'Track',
      user_id: 'u1',
      Traits: traits,
      Properties: properties,
      context,
    });
    assert.deepEqual(out.traits, { first_name: 'Ada', UserId: 'inner', Type: 'Inner' });
    assert.deepEqual(out.properties, { Order_ID: 'o1', user_id: 'inner' });
    assert.deepEqual(out.context, { Traits: { USER_ID: 'x' } });
    assert.equal(out.traits, traits, 'nested values are kept by reference, not copied');
  });

  test('unknown extra keys are kept as sent', () => {
    const out = normalizeEvent({ type: 'Track', user_id: 'u1', _metadata: { a: 1 }, Custom_Key: 'x' });
    assert.deepEqual(out, { type: 'track', userId: 'u1', _metadata: { a: 1 }, Custom_Key: 'x' });
  });

  test('with both userId and user_id, canonical userId wins and user_id stays under its own key', () => {
    const out = normalizeEvent({ type: 'identify', user_id: 'variant', userId: 'canonical' });
    assert.equal(out.userId, 'canonical');
    assert.equal(out.user_id, 'variant');
  });

  test('a null or empty value is as missing (CONTRACT.md): a value under another casing is not hidden by it, in either order', () => {
    for (const input of [
      { type: 'track', event: 'e', userId: null, user_id: 'u1' },
      { type: 'track', event: 'e', user_id: 'u1', userId: null },
      { type: 'track', event: 'e', user_id: null, USERID: 'u1' },
    ]) {
      assert.equal(normalizeEvent(input).userId, 'u1', JSON.stringify(input));
    }
    for (const input of [
      { type: 'track', event: 'e', userId: '', user_id: 'u1' },
      { type: 'track', event: 'e', UserId: 'u1', userId: '' },
    ]) {
      assert.equal(normalizeEvent(input).userId, 'u1', JSON.stringify(input));
    }
    assert.equal(normalizeEvent({ type: '', Type: 'Track', event: 'e' }).type, 'track');
    assert.equal(normalizeEvent({ type: null, Type: 'Track', event: 'e' }).type, 'track');
    assert.equal(normalizeEvent({ Type: 'Track', type: null, event: 'e' }).type, 'track');
    const kept = normalizeEvent({ type: 'track', userId: 'u1', user_id: null });
    assert.equal(kept.userId, 'u1');
    assert.equal(kept.user_id, null);
  });

  test('with two non-canonical variants (user_id, UserId), neither value is lost', () => {
    const out = normalizeEvent({ type: 'identify', user_id: 'first', UserId: 'second' });
    assert.equal(out.userId, 'first');
    const values = Object.values(out);
    assert.ok(values.includes('first') && values.includes('second'), JSON.stringify(out));
    assert.equal(Object.keys(out).length, 3);
  });

  test('an own "__proto__" key (as JSON.parse makes it) stays data, never the copy\'s prototype', () => {
    const input = JSON.parse('{"Type":"track","userId":"u1","__proto__":{"event":"Injected"}}');
    const out = normalizeEvent(input);
    assert.equal(Object.getPrototypeOf(out), Object.prototype);
    assert.equal(out.event, undefined);
  });
});

describe('messageIdOf', () => {
  // The duplicate filter reads each event of a batch by its messageId before the event is taken: the
  // id must be the one normalizeEvent then gives the event, whatever the spellings and which say nothing.
  const SPELLINGS = ['messageId', 'message_id', 'MessageId', 'MESSAGEID'];
  const VALUES: unknown[] = [null, '', [], 'a', 'b', 5];
  const asNormalized = (event: Record<string, unknown>) => {
    const id = normalizeEvent(event).messageId;
    return typeof id === 'string' && id !== '' ? id : undefined;
  };

  function* events(keys: string[], size: number): Generator<Record<string, unknown>> {
    if (size === 0) return yield {};
    for (const key of keys) {
      for (const rest of events(
        keys.filter((k) => k !== key),
        size - 1,
      )) {
        for (const value of VALUES) yield { type: 'track', [key]: value, ...rest };
      }
    }
  }

  test('is the id normalizeEvent gives, for every order of up to three spellings and every kind of value', () => {
    let cases = 0;
    for (let size = 0; size <= 3; size++) {
      for (const event of events(SPELLINGS, size)) {
        assert.equal(messageIdOf(event), asNormalized(event), JSON.stringify(event));
        cases++;
      }
    }
    assert.equal(cases, 1 + 24 + 432 + 5184);
  });

  test('is undefined for what is not an event object', () => {
    for (const value of [null, 'm1', 5, ['m1'], undefined]) assert.equal(messageIdOf(value), undefined);
  });

  test('reads own keys only: a polluted Object.prototype gives no event an id', () => {
    for (const key of ['messageId', 'message_id']) {
      Object.defineProperty(Object.prototype, key, {
        value: 'inherited',
        enumerable: true,
        configurable: true,
      });
      try {
        assert.equal(messageIdOf({ type: 'track' }), undefined, key);
        assert.equal(messageIdOf({ type: 'track', messageId: null }), undefined, key);
      } finally {
        delete (Object.prototype as Record<string, unknown>)[key];
      }
    }
  });
});
