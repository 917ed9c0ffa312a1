import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DigestSet } from '../src/digest-set.ts';

// The set of events being processed (idempotency.ts): digests added and deleted at random against a plain
// Set of their text. First words are drawn from a few values only, so that digests share home buckets and
// deletion has to shift chains that wrap around the table's end; the set starts small, so that it grows.

function digestOf(n: number): Uint32Array {
  return Uint32Array.of((n % 7) * 0x9e3779b9, n, n * 31, 0xdead ^ n);
}

test('matches a plain Set through thousands of random adds and deletes, while it grows', () => {
  let seed = 11;
  const random = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const set = new DigestSet(2);
  const model = new Set<number>();
  for (let step = 0; step < 30_000; step++) {
    // More adds than deletes early on, fewer later: the set grows, then empties again.
    const n = Math.floor(random() * 300);
    const adding = random() < (step < 15_000 ? 0.6 : 0.4);
    if (adding) {
      set.add(digestOf(n));
      model.add(n);
    } else {
      assert.equal(set.delete(digestOf(n)), model.delete(n), `step ${step}: delete ${n}`);
    }
    assert.equal(set.size, model.size, `step ${step}: size`);
    const probe = Math.floor(random() * 300);
    assert.equal(set.has(digestOf(probe)), model.has(probe), `step ${step}: has ${probe}`);
  }
  for (const n of model) assert.ok(set.has(digestOf(n)), `${n} kept`);
});

test('digests that differ in any one word are different entries', () => {
  const set = new DigestSet();
  const base = Uint32Array.of(1, 2, 3, 4);
  set.add(base);
  for (let word = 0; word < 4; word++) {
    const other = Uint32Array.from(base);
    other[word] = (other[word] as number) + 1;
    assert.equal(set.has(other), false, `word ${word}`);
    assert.equal(set.delete(other), false);
  }
  set.add(Uint32Array.from(base)); // the same digest again: still one entry
  assert.equal(set.size, 1);
  assert.ok(set.delete(base));
  assert.equal(set.size, 0);
  assert.equal(set.has(base), false);
});

test('the caller may reuse its digest array: the set keeps a copy', () => {
  const set = new DigestSet();
  const scratch = Uint32Array.of(5, 6, 7, 8);
  set.add(scratch);
  scratch[1] = 99;
  assert.equal(set.has(scratch), false);
  assert.ok(set.has(Uint32Array.of(5, 6, 7, 8)));
});

test('grows for a burst and gives the memory back after it', () => {
  const set = new DigestSet(64);
  for (let n = 0; n < 10_000; n++) set.add(digestOf(n));
  assert.ok(set.buckets >= 20_000, `${set.buckets} buckets hold 10,000 digests at most half full`);
  for (let n = 0; n < 10_000; n++) assert.ok(set.delete(digestOf(n)), `${n} deleted`);
  assert.equal(set.size, 0);
  assert.equal(set.buckets, 64);
});

test('a set made small returns to its first size, however it was drained', () => {
  for (const first of [1, 2, 3, 8]) {
    const set = new DigestSet(first);
    const least = set.buckets;
    for (let n = 0; n < 1_000; n++) set.add(digestOf(n));
    for (let n = 0; n < 1_000; n++) set.delete(digestOf(n));
    assert.equal(set.buckets, least, `made with ${first}`);
  }
});
