// What the Handlers type takes, checked by the compiler (`make typecheck`), and at run time the answer
// each gives. A handler that returns what its driver returned (a queue's new length, a Map, a query's
// result, `true`) is a 200, as the README says; the type refused it, so partners wrote `{ … ; }` blocks
// or casts. A status outside the contract, or a message that is not text, is still a type error.
import assert from 'node:assert/strict';
import { test } from 'node:test';
// What the public types name is public too: a consumer can spell the type of a value it is given.
import type { FileStat, HandlerOptions, Metrics, OpenFlags, RedisClient, StoreLock } from '../src/index.ts';
import {
  createFetchHandler,
  createHandler,
  EndpointError,
  type Handlers,
  RetryError,
  silentLogger,
} from '../src/index.ts';
import { API_KEY, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';

export type Named = [FileStat, Metrics, OpenFlags, RedisClient, StoreLock];

// An option left out and one given as `undefined` (an environment variable not set) are the same, also
// under a consumer's exactOptionalPropertyTypes (as this project's tsconfig has it).
const unset: string | undefined = process.env.SEGMENT_ENDPOINT_NOT_SET;
export const fromEnv: HandlerOptions = {
  handlers: {},
  apiKeys: [{ key: 'k', signatureSecret: unset }],
  path: unset,
};
const maybeTrack: Handlers['track'] = process.env.SEGMENT_ENDPOINT_NOT_SET ? () => {} : undefined;
export const someHandlers: Handlers = { track: maybeTrack };
// A wait the partner's client may or may not have said, passed on as it is.
const said: number | undefined = Number(process.env.SEGMENT_ENDPOINT_NOT_SET) || undefined;
export const waits = [
  new RetryError('the warehouse is busy', { retryAfter: said }),
  new EndpointError('SEG_RETRY', undefined, { retryAfter: said }),
];
export const mounted = createFetchHandler({ ...fromEnv, log: silentLogger }, { basePath: unset });

const queue: unknown[] = [];
const seen = new Map<string, unknown>();

const returning: Handlers = {
  track: (event) => queue.push(event),
  identify: (event) => seen.set(String(event.userId), event),
  page: async (event) => queue.push(event),
  screen: () => true,
  group: async () => ({ rows: [], rowCount: 1 }),
  alias: () => {},
  delete: () => ({ status: 202 }),
};

// A handler logs as with pino: an object and a message, a message alone, an error first.
export const logging: Handlers = {
  track: (event, ctx) => {
    ctx.log.info({ event: event.event }, 'tracked');
    ctx.log.info('synced');
    ctx.log.error(new Error('CRM refused'), 'not synced');
  },
};

// @ts-expect-error a status outside the contract
const outside: Handlers = { track: () => ({ status: 404 }) };
// @ts-expect-error a message that is not text
const untyped: Handlers = { track: () => ({ status: 400, message: 42 }) };
// @ts-expect-error a `statusCode`, which no result is read for (a thrown error's is): it would be a 200
const statusCode: Handlers = { track: () => ({ statusCode: 503 }) };
// The same results from an async handler, the common case: a promise is an object without a `status`,
// and was taken for a driver's result, so none of these was refused.
// @ts-expect-error a status outside the contract, awaited
const outsideAsync: Handlers = { track: async () => ({ status: 204 }) };
// @ts-expect-error a status that is text, awaited
const textAsync: Handlers = { track: async () => ({ status: '200' }) };
// @ts-expect-error a `statusCode`, awaited
const statusCodeAsync: Handlers = { track: async () => ({ statusCode: 202 }) };
// A thenable (a query builder's, a job queue's) is awaited as a promise is: what it settles with is the
// result, a status included.
const builder: PromiseLike<{ status: 202 }> = {
  // biome-ignore lint/suspicious/noThenProperty: a thenable is what a driver hands back
  then: (done) => Promise.resolve({ status: 202 as const }).then(done),
};
export const thenable: Handlers = { track: () => builder, page: async () => ({ status: 202 }) };

test("handlers that return their driver's result are typed, and answered 200", async () => {
  const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers: returning });
  for (const type of ['track', 'identify', 'page', 'screen', 'group', 'alias']) {
    const event = {
      ...trackEvent(),
      type,
      ...(type === 'alias' && { previousId: 'p' }),
      ...(type === 'group' && { groupId: 'g' }),
    };
    const res = await inject(handler, { body: event });
    assert.equal(res.status, 200, `${type}: ${res.body}`);
  }
  assert.ok(outside !== undefined && untyped !== undefined && statusCode !== undefined);
  assert.ok(outsideAsync !== undefined && textAsync !== undefined && statusCodeAsync !== undefined);
});

test('a thenable is awaited, and a status is what it settles with', async () => {
  const handler = createHandler({ apiKeys: [API_KEY], log: silentLogger, handlers: thenable });
  assert.equal((await inject(handler, { body: trackEvent() })).status, 202);
  assert.equal((await inject(handler, { body: { ...trackEvent(), type: 'page' } })).status, 202);
});

test('options given as undefined are taken as left out', () => {
  assert.doesNotThrow(() => createHandler({ ...fromEnv, log: silentLogger }));
});
