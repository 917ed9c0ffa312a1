// The budget of characters the bodies being processed may hold at once (held-bodies.ts), at its edges.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EndpointError } from '../src/errors.ts';
import { HeldBodies } from '../src/held-bodies.ts';

const MI = 1024 * 1024;

const refusedOverloaded = (err: unknown) =>
  err instanceof EndpointError && err.code === 'SEG_OVERLOADED' && err.status === 503;

test('32 Mi characters at the least, or four bodies at --max-body-bytes when that is more', () => {
  assert.equal(new HeldBodies(512 * 1024).limit, 32 * MI);
  assert.equal(new HeldBodies(8 * MI).limit, 32 * MI);
  assert.equal(new HeldBodies(10 * MI).limit, 40 * MI);
});

test('bodies are taken up to the limit exactly; one character past it is a 503 SEG_OVERLOADED, taking nothing', () => {
  const held = new HeldBodies(512 * 1024);
  const first = held.take(held.limit - 10);
  assert.equal(held.take(10), 10);
  assert.throws(() => held.take(1), refusedOverloaded);
  held.release(first);
  assert.equal(held.take(held.limit - 10), held.limit - 10, 'what the refusal did not take is free');
  assert.throws(() => held.take(1), refusedOverloaded);
});

test('one body alone is always taken, however large; the next is refused until it is released', () => {
  const held = new HeldBodies(512 * 1024);
  const huge = held.take(held.limit * 2);
  assert.throws(() => held.take(1), refusedOverloaded);
  held.release(huge);
  assert.equal(held.take(1), 1);
});
