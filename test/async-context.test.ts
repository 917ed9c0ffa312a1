import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { createHandler, silentLogger } from '../src/index.ts';
import { API_KEY, segmentHeaders, trackEvent } from './helpers.ts';

// The handler mounted in the operator's own server, each request run in its own AsyncLocalStorage
// context (request-scoped logging, tracing: what OpenTelemetry and most loggers rely on). The body's end
// and the deadlines fire in other contexts (the socket's, the deadline list's timer): the handler and its
// signal must still see the context of the request that carried the event.

async function serve(handler: ReturnType<typeof createHandler>) {
  const als = new AsyncLocalStorage<string>();
  const server = createServer((req, res) =>
    als.run(String(req.headers['x-request-id']), () => handler(req, res)),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const post = (id: string) =>
    new Promise<number>((resolve, reject) => {
      const body = JSON.stringify(trackEvent({ userId: id }));
      const headers = {
        ...segmentHeaders(),
        'x-request-id': id,
        'content-length': String(Buffer.byteLength(body)),
      };
      const req = request({ port, host: '127.0.0.1', method: 'POST', path: '/', headers }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(body);
    });
  return { als, post, close: () => server.close() };
}

test('a synchronous handler runs in the async context of the request that carried the event', async () => {
  const seen: Record<string, string | undefined> = {};
  let als: AsyncLocalStorage<string> | undefined;
  const handler = createHandler({
    apiKeys: [API_KEY],
    log: silentLogger,
    handlers: {
      track: (event) => {
        seen[String(event.userId)] = als?.getStore();
      },
    },
  });
  const s = await serve(handler);
  als = s.als;
  try {
    assert.deepEqual(await Promise.all([s.post('a'), s.post('b')]), [200, 200]);
    assert.deepEqual(seen, { a: 'a', b: 'b' });
  } finally {
    s.close();
  }
});

test("a timed-out handler's ctx.signal aborts in its own request's async context", async () => {
  const seen: Record<string, string | undefined> = {};
  let als: AsyncLocalStorage<string> | undefined;
  const handler = createHandler({
    apiKeys: [API_KEY],
    log: silentLogger,
    handlerTimeoutMs: 200,
    handlers: {
      track: (event, ctx) =>
        new Promise<void>((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            seen[String(event.userId)] = als?.getStore();
            resolve();
          });
        }),
    },
  });
  const s = await serve(handler);
  als = s.als;
  try {
    assert.deepEqual(await Promise.all([s.post('a'), s.post('b')]), [503, 503]);
    assert.deepEqual(seen, { a: 'a', b: 'b' });
  } finally {
    s.close();
  }
});
