import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EventType } from '../src/schemas.ts';
import { eventValidators } from '../src/validate.ts';

const validators = eventValidators();

type Event = Record<string, unknown>;

/** The least each type needs to pass. */
const MINIMAL: Record<EventType, Event> = {
  identify: { type: 'identify', userId: 'u1' },
  track: { type: 'track', userId: 'u1', event: 'Order Completed' },
  page: { type: 'page', anonymousId: 'a1' },
  screen: { type: 'screen', userId: 'u1' },
  group: { type: 'group', userId: 'u1', groupId: 'g1' },
  alias: { type: 'alias', userId: 'u1', previousId: 'p1' },
  delete: { type: 'delete', userId: 'u1' },
};

/** For each type, a required field to remove and the field names its message must give. */
const REQUIRED: Record<EventType, Array<[field: string, named: string[]]>> = {
  identify: [['userId', ['userId', 'anonymousId']]],
  track: [
    ['event', ['event']],
    ['userId', ['userId', 'anonymousId']],
  ],
  page: [['anonymousId', ['userId', 'anonymousId']]],
  screen: [['userId', ['userId', 'anonymousId']]],
  group: [
    ['groupId', ['groupId']],
    ['userId', ['userId', 'anonymousId']],
  ],
  alias: [
    ['previousId', ['previousId']],
    ['userId', ['userId']],
  ],
  delete: [['userId', ['userId']]],
};

/** `track: ... "event" ...`: the type prefix, then each field name in quotes, in order. */
const naming = (type: string, fields: string[]): RegExp =>
  new RegExp(`^${type}: .*${fields.map((f) => `"${f}"`).join('.*')}`);

const validate = (event: Event): string | undefined => validators[event.type as EventType](event);

const without = (event: Event, key: string): Event => {
  const copy = { ...event };
  delete copy[key];
  return copy;
};

test('there is a validator for each of the seven types, and no other', () => {
  assert.deepEqual(Object.keys(validators).sort(), Object.keys(MINIMAL).sort());
});

for (const type of Object.keys(MINIMAL) as EventType[]) {
  describe(type, () => {
    test('a minimal event passes', () => {
      assert.equal(validate(MINIMAL[type]), undefined);
    });

    for (const [field, named] of REQUIRED[type]) {
      test(`without "${field}" it fails, naming ${named.join(' or ')}`, () => {
        assert.match(validate(without(MINIMAL[type], field)) ?? '', naming(type, named));
      });
    }

    test('another type\'s "type" fails on "type"', () => {
      const other = type === 'track' ? 'identify' : 'track';
      assert.match(validators[type]({ ...MINIMAL[type], type: other }) ?? '', naming(type, ['type']));
    });
  });
}

describe('who did it', () => {
  test('anonymousId alone is enough where userId or anonymousId is required', () => {
    for (const type of ['identify', 'track', 'page', 'screen', 'group'] as const) {
      const event = { ...without(MINIMAL[type], 'userId'), anonymousId: 'a1' };
      assert.equal(validate(event), undefined, type);
    }
  });

  test('a null userId with an anonymousId passes; both null fails', () => {
    assert.equal(validate({ type: 'identify', userId: null, anonymousId: 'a1' }), undefined);
    assert.match(
      validate({ type: 'identify', userId: null, anonymousId: null }) ?? '',
      naming('identify', ['userId', 'anonymousId']),
    );
  });

  test('numeric ids pass', () => {
    assert.equal(validate({ type: 'group', userId: 42, groupId: 7 }), undefined);
    assert.equal(validate({ type: 'alias', userId: 1, previousId: 2 }), undefined);
  });

  test('an empty-string id fails, naming it', () => {
    assert.match(validate({ type: 'identify', userId: '' }) ?? '', /^identify: "userId"/);
    assert.match(validate({ type: 'alias', userId: 'u1', previousId: '' }) ?? '', /^alias: "previousId"/);
    assert.match(validate({ type: 'alias', userId: '', previousId: 'p1' }) ?? '', /^alias: "userId"/);
    assert.match(validate({ type: 'delete', userId: '' }) ?? '', /^delete: "userId"/);
    assert.match(
      validate({ type: 'track', event: 'e', userId: '', anonymousId: '' }) ?? '',
      naming('track', ['userId', 'anonymousId']),
    );
  });

  test('an empty id beside the other one is as missing: the event says who did it (CONTRACT.md: accept)', () => {
    for (const type of ['identify', 'track', 'page', 'screen', 'group'] as const) {
      for (const ids of [
        { userId: 'u1', anonymousId: '' },
        { userId: '', anonymousId: 'a1' },
      ]) {
        assert.equal(validate({ ...MINIMAL[type], ...ids }), undefined, `${type} ${JSON.stringify(ids)}`);
      }
    }
  });
});

describe('leniency real payloads need', () => {
  test('context and integrations null or [] (delete)', () => {
    for (const value of [null, [], {}]) {
      const event = { ...MINIMAL.delete, context: value, integrations: value };
      assert.equal(validate(event), undefined, JSON.stringify(value));
    }
  });

  test('context and integrations null on every other type', () => {
    for (const type of Object.keys(MINIMAL) as EventType[]) {
      assert.equal(validate({ ...MINIMAL[type], context: null, integrations: null }), undefined, type);
    }
  });

  test('version "1.1" and 2', () => {
    assert.equal(validate({ ...MINIMAL.track, version: '1.1' }), undefined);
    assert.equal(validate({ ...MINIMAL.track, version: 2 }), undefined);
  });

  test('a non-ISO originalTimestamp string', () => {
    assert.equal(
      validate({ ...MINIMAL.track, originalTimestamp: 'Tue Jan 02 2024 10:00:00 GMT' }),
      undefined,
    );
  });

  test('extra top-level keys', () => {
    assert.equal(validate({ ...MINIMAL.identify, _metadata: { bundled: [] }, whatever: 1 }), undefined);
  });

  test('properties and traits []', () => {
    assert.equal(validate({ ...MINIMAL.track, properties: [] }), undefined);
    assert.equal(validate({ ...MINIMAL.identify, traits: [] }), undefined);
  });

  test('a non-empty array for properties or traits fails, saying only an empty one passes', () => {
    const message = /^(track|group): "(properties|traits)" may be an array only when empty$/;
    assert.match(validate({ ...MINIMAL.track, properties: [{ plan: 'pro' }] }) ?? '', message);
    assert.match(validate({ ...MINIMAL.group, traits: ['x'] }) ?? '', message);
  });

  test('null in optional fields', () => {
    const event = { ...MINIMAL.page, name: null, messageId: null, timestamp: null, properties: null };
    assert.equal(validate(event), undefined);
  });
});

describe('the types a field takes, named in full', () => {
  test('a field of several types names each', () => {
    assert.equal(validate({ ...MINIMAL.track, messageId: 5 }), 'track: "messageId" must be a string or null');
    assert.equal(
      validate({ ...MINIMAL.identify, userId: true }),
      'identify: "userId" must be a string, a number or null',
    );
    assert.equal(
      validate({ ...MINIMAL.page, version: {} }),
      'page: "version" must be a number, a string or null',
    );
    assert.equal(
      validate({ ...MINIMAL.identify, traits: 'x' }),
      'identify: "traits" must be an object, an array or null',
    );
    assert.equal(
      validate({ ...MINIMAL.alias, previousId: false }),
      'alias: "previousId" must be a string or a number',
    );
  });
});

describe('messageId length', () => {
  test('100 characters pass, 101 fail naming messageId', () => {
    assert.equal(validate({ ...MINIMAL.track, messageId: 'm'.repeat(100) }), undefined);
    assert.match(validate({ ...MINIMAL.track, messageId: 'm'.repeat(101) }) ?? '', /^track: "messageId"/);
  });
});

describe('wrong types', () => {
  const cases: Array<[Event, RegExp]> = [
    [{ ...MINIMAL.track, event: 5 }, /^track: "event" must be /],
    [{ ...MINIMAL.identify, userId: true }, /^identify: "userId" must be /],
    [{ ...MINIMAL.delete, userId: {} }, /^delete: "userId" must be /],
    [{ ...MINIMAL.track, messageId: 5 }, /^track: "messageId" must be /],
    [{ ...MINIMAL.track, version: true }, /^track: "version" must be /],
    [{ ...MINIMAL.track, timestamp: 1700000000 }, /^track: "timestamp" must be /],
    [{ ...MINIMAL.track, properties: 'x' }, /^track: "properties" must be /],
    [{ ...MINIMAL.identify, traits: 1 }, /^identify: "traits" must be /],
    [{ ...MINIMAL.page, name: 5 }, /^page: "name" must be /],
  ];
  for (const [event, message] of cases) {
    test(message.source, () => {
      assert.match(validate(event) ?? '', message);
    });
  }
});

test('the generated validators are those of src/schemas.ts (run `make build` after changing a schema)', async () => {
  const { generate, TARGET } = await import('../scripts/generate-validators.ts');
  const { readFileSync } = await import('node:fs');
  assert.equal(readFileSync(TARGET, 'utf8'), generate());
});
