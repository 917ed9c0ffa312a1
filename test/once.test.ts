import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventKey } from '../src/event-digest.ts';
import { createHandler, MemoryIdempotencyStore, silentLogger } from '../src/index.ts';
import { onceEvent } from '../src/once.ts';
import { API_KEY, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';

// onceEvent's own path to the in-memory store: an event whose handler answers synchronously is checked
// and remembered without being marked pending; one that goes asynchronous is held before anything else
// runs. These are the cases where that path differs from claim/complete/release.

describe('onceEvent with the in-memory store', () => {
  test('a synchronous success is remembered under the same key claim() uses', () => {
    const store = new MemoryIdempotencyStore();
    assert.equal(
      onceEvent(store, 'key', 'm1', () => 200),
      200,
    );
    assert.equal(
      onceEvent(store, 'key', 'm1', () => 200),
      'duplicate',
    );
    assert.equal(store.claim(eventKey('key', 'm1')), 'done');
    // The separator keeps (apiKey, messageId) pairs apart: "ke" + "y\nm1" is another event.
    assert.equal(store.claim(eventKey('ke', 'y\nm1')), 'new');
  });

  test('a synchronous throw is not remembered: the retry runs', () => {
    const store = new MemoryIdempotencyStore();
    assert.throws(() =>
      onceEvent(store, 'key', 'm2', () => {
        throw new Error('down');
      }),
    );
    let runs = 0;
    assert.equal(
      onceEvent(store, 'key', 'm2', () => ++runs),
      1,
    );
  });

  test('a copy arriving while the first runs asynchronously waits: duplicate if it succeeds', async () => {
    const store = new MemoryIdempotencyStore();
    let finish: (value: number) => void = () => {};
    const first = onceEvent(store, 'key', 'm3', () => new Promise<number>((resolve) => (finish = resolve)));
    let copyRuns = 0;
    const copy = onceEvent(store, 'key', 'm3', () => ++copyRuns);
    assert.ok(copy instanceof Promise, 'the copy waits for the first');
    finish(200);
    assert.equal(await first, 200);
    assert.equal(await copy, 'duplicate');
    assert.equal(copyRuns, 0);
  });

  test('a copy waiting when the first fails asynchronously is told to retry; the retry is processed', async () => {
    const store = new MemoryIdempotencyStore();
    let fail: (err: Error) => void = () => {};
    const first = onceEvent(store, 'key', 'm4', () => new Promise<number>((_, reject) => (fail = reject)));
    let copyRuns = 0;
    const copy = onceEvent(store, 'key', 'm4', () => ++copyRuns);
    fail(new Error('down'));
    await assert.rejects(Promise.resolve(first), /down/);
    await assert.rejects(Promise.resolve(copy), { code: 'SEG_DUPLICATE_IN_FLIGHT' });
    assert.equal(copyRuns, 0);
    assert.equal(
      onceEvent(store, 'key', 'm4', () => 202),
      202,
    );
    assert.equal(
      onceEvent(store, 'key', 'm4', () => 203),
      'duplicate',
    );
  });

  test('a subclass of the store keeps its own claim and complete', () => {
    const seen: string[] = [];
    class Counting extends MemoryIdempotencyStore {
      override claim(key: string) {
        seen.push(key);
        return super.claim(key);
      }
    }
    const store = new Counting();
    onceEvent(store, 'key', 'm5', () => 200);
    assert.deepEqual(seen, [eventKey('key', 'm5')]);
  });
});

describe('duplicates through the handler with the default store', () => {
  test('copies at the same moment, asynchronous handler: processed once, all 200', async () => {
    const calls: string[] = [];
    let open: () => void = () => {};
    const held = new Promise<void>((resolve) => (open = resolve));
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      handlers: {
        track: async (event) => {
          calls.push(String(event.messageId));
          await held;
        },
      },
    });
    const event = trackEvent({ messageId: 'dup-async' });
    const answers = Array.from({ length: 5 }, () => inject(handler, { body: event }));
    setTimeout(open, 20);
    assert.deepEqual(
      (await Promise.all(answers)).map((a) => a.status),
      [200, 200, 200, 200, 200],
    );
    assert.deepEqual(calls, ['dup-async']);
  });

  test('a synchronous handler that refuses: the retry runs again', async () => {
    let runs = 0;
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      handlers: {
        track: () => {
          runs++;
          return runs === 1 ? { status: 503 } : undefined;
        },
      },
    });
    const event = trackEvent({ messageId: 'dup-sync' });
    assert.equal((await inject(handler, { body: event })).status, 503);
    assert.equal((await inject(handler, { body: event })).status, 200);
    assert.equal((await inject(handler, { body: event })).status, 200);
    assert.equal(runs, 2);
  });
});
