import assert from 'node:assert/strict';
import { test } from 'node:test';
import { digest53 } from '../src/digest.ts';
import { ShardedMap } from '../src/sharded-map.ts';

// The map of a keys file's keys, split so that no one table is copied whole as it grows (a SIGHUP of
// millions of keys held the event loop for that copy): it must answer as one Map would.

test('made for millions of keys, it finds each key it was given and nothing else', () => {
  const map = new ShardedMap<number>(4_000_000, digest53);
  const model = new Map<string, number>();
  for (let i = 0; i < 50_000; i++) {
    map.set(`customer-${i}`, i);
    model.set(`customer-${i}`, i);
  }
  for (let i = 0; i < 50_000; i += 7) {
    map.set(`customer-${i}`, -i); // set again: replaced, as in a Map
    model.set(`customer-${i}`, -i);
  }
  for (const [key, value] of model) assert.equal(map.get(key), value, key);
  for (let i = 50_000; i < 51_000; i++) assert.equal(map.get(`customer-${i}`), undefined);
});

test('any number picks a shard: digests past 32 bits, negative ones, all the same value', () => {
  const picks: Array<(key: string) => number> = [
    (key) => 2 ** 52 + key.length * 977, // past 32 bits: its low bits pick
    (key) => -key.charCodeAt(key.length - 1),
    () => 0xffff_ffff,
  ];
  for (const pick of picks) {
    const map = new ShardedMap<string>(4_000_000, pick);
    for (let i = 0; i < 2_000; i++) map.set(`k${'x'.repeat(i % 40)}${i}`, `v${i}`);
    for (let i = 0; i < 2_000; i++) assert.equal(map.get(`k${'x'.repeat(i % 40)}${i}`), `v${i}`);
    assert.equal(map.get('k-none'), undefined);
  }
});

test('made for a few keys it is one Map: no digest taken of a key', () => {
  let picked = 0;
  const pick = () => {
    picked++;
    return 3;
  };
  const map = new ShardedMap<number>(1_000, pick);
  for (let i = 0; i < 5_000; i++) map.set(`key-${i}`, i); // more than expected: still found
  for (let i = 0; i < 5_000; i++) assert.equal(map.get(`key-${i}`), i);
  assert.equal(picked, 0);
  const large = new ShardedMap<number>(1_000_000, pick);
  large.set('key', 1);
  assert.equal(large.get('key'), 1);
  assert.equal(picked, 2);
});

test('one Map up to 16,384 expected keys, shards from 16,385', () => {
  let picked = 0;
  const pick = () => {
    picked++;
    return 1;
  };
  new ShardedMap<number>(16_384, pick).set('key', 1);
  assert.equal(picked, 0);
  new ShardedMap<number>(16_385, pick).set('key', 1);
  assert.equal(picked, 1);
});
