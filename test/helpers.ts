// What most tests share: Segment's API key, headers and events, handlers that record what they are
// given, temporary directories. Injection, certificates, processes, clients and waits: helpers-*.ts.
import { mkdtempSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'node:test';
import {
  type Context,
  createHandler,
  type HandlerOptions,
  type Handlers,
  silentLogger,
} from '../src/index.ts';

export const API_KEY = 'test-key';

/** A handler for API_KEY and 'other-key' that takes track events and does nothing: one customer beside another. */
export const twoKeyHandler = (options: Partial<HandlerOptions>) =>
  createHandler({
    apiKeys: [API_KEY, 'other-key'],
    log: silentLogger,
    handlers: { track: () => {} },
    ...options,
  });

/** `Authorization: Basic base64(key:)`, exactly as Segment sends it. */
export function basic(key: string, colon = true): string {
  return `Basic ${Buffer.from(colon ? `${key}:` : key).toString('base64')}`;
}

export function encodeSettings(settings: unknown): string {
  return Buffer.from(JSON.stringify(settings)).toString('base64');
}

/** The headers Segment sends with every event. */
export function segmentHeaders(key = API_KEY): Record<string, string> {
  return {
    authorization: basic(key),
    'content-type': 'application/json',
    'user-agent': 'Segment.io/1.0',
    accept: '*/*',
    'cache-control': 'no-cache',
  };
}

export const trackEvent = (extra: Record<string, unknown> = {}) => ({
  type: 'track',
  event: 'Signed Up',
  userId: 'u1',
  messageId: `m-${Math.random().toString(36).slice(2)}`,
  timestamp: '2026-11-26T10:00:00.000Z',
  properties: { plan: 'pro' },
  context: { library: { name: 'analytics-node', version: '2.0.0' } },
  ...extra,
});

/** What `recorder()` saw: each event a handler was called with, and its context. */
export type Seen = Array<{ event: Record<string, unknown>; ctx: Context }>;

/**
 * A handler for every event type that records what it is called with, in `seen`; `fail` may pick an
 * error for an event to be thrown instead.
 */
export function recorder(fail?: (event: Record<string, unknown>) => Error | undefined): {
  seen: Seen;
  handlers: Handlers;
} {
  const seen: Seen = [];
  const record = (event: unknown, ctx: Context) => {
    const error = fail?.(event as Record<string, unknown>);
    if (error !== undefined) throw error;
    seen.push({ event: event as Record<string, unknown>, ctx });
  };
  const handlers: Handlers = {
    identify: record,
    track: record,
    page: record,
    screen: record,
    group: record,
    alias: record,
    delete: record,
  };
  return { seen, handlers };
}

/** The five calls a Node SDK's user makes, one of each type (identify, track, page, group, alias). */
export interface NodeSdk {
  identify(message: object): void;
  track(message: object): void;
  page(message: object): void;
  group(message: object): void;
  alias(message: object): void;
}

/** One event of each type through a Node SDK; the track is 'Signed Up' with `{ plan: 'pro' }`. */
export function sendOneOfEach(analytics: NodeSdk): void {
  analytics.identify({ userId: 'u1', traits: { email: 'ada@example.com' } });
  analytics.track({ userId: 'u1', event: 'Signed Up', properties: { plan: 'pro' } });
  analytics.page({ anonymousId: 'a1', name: 'Home' });
  analytics.group({ userId: 'u1', groupId: 'g1' });
  analytics.alias({ userId: 'u1', previousId: 'a1' });
}

/** Bytes a FIFO's non-blocking reader `fd` finds waiting in it now: 0 when nothing was written there. */
export function bytesWaiting(fd: number): number {
  try {
    return readSync(fd, Buffer.alloc(64 * 1024));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return 0;
    throw err;
  }
}

/** A new temporary directory `segment-endpoint-<name>-…` a call; all are removed after each test. */
export function tempDirs(name: string): () => string {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    const dir = mkdtempSync(join(tmpdir(), `segment-endpoint-${name}-`));
    dirs.push(dir);
    return dir;
  };
}

/**
 * A handler over `idempotency` whose track handler records each messageId it runs in `calls`, waits for
 * `hold`, and fails with a 503 as many times as `failNext(n)` asks: for duplicate-suppression tests.
 */
export function countingHandler(
  idempotency: Parameters<typeof createHandler>[0]['idempotency'],
  calls: string[] = [],
  hold: Promise<void> = Promise.resolve(),
) {
  let fail = 0;
  const handler = createHandler({
    apiKeys: [API_KEY, 'other-key'],
    log: silentLogger,
    idempotency,
    handlers: {
      track: async (event) => {
        calls.push(String(event.messageId));
        await hold;
        if (fail > 0) {
          fail--;
          throw Object.assign(new Error('downstream down'), { status: 503 });
        }
      },
    },
  });
  return { handler, calls, failNext: (n: number) => (fail = n) };
}
