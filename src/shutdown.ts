import type { Server } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import type { ConnectionSlots } from './connections.ts';
import type { EndpointHandler } from './handler.ts';

// How createServer's close() stops a server without cutting short the answers it has begun.

// 1 s, fixed by design: on close, for requests half sent or on their way when draining began.
const GRACE_MS = 1_000;

/**
 * Graceful close: new events get 503, running requests finish and their answers are flushed (up to
 * `shutdownTimeoutMs`), then the server stops and its connections close.
 */
export async function gracefulClose(
  server: Server,
  handler: EndpointHandler,
  slots: ConnectionSlots,
  shutdownTimeoutMs: number,
): Promise<void> {
  handler.drain();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, shutdownTimeoutMs);
  });
  try {
    // Events in flight finish; meanwhile newcomers, on new connections too, are answered 503 (and
    // health says draining), which is what a load balancer in front needs to see. Nothing is closed
    // before every answer begun is flushed: Node closes the connections it counts idle (close() does
    // too), and counts one idle once its answer is ended, before its bytes are flushed (over TLS, a
    // turn of the loop later). Until then a keep-alive connection that brings a request hears 503 and
    // `Connection: close`.
    await Promise.race([handler.idle(), deadline]);
    await Promise.race([slots.settled(), deadline]);
    // Each connection that had a request ends in a lingering close GRACE_MS from now (meanwhile a
    // request it brings, half sent or its client's next, hears 503 and Connection: close), and is not
    // closed before its client closes (or LINGER_MS): its client may not have read its 200s yet, and
    // still be sending. Node would count it idle, and reset it.
    slots.endAnswered(GRACE_MS);
    await Promise.race([slots.lingered(), deadline]);
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    // Every answer already begun is flushed. A connection still open had no request until now: it is
    // idle, or its first request is half sent. The half sent get a moment to finish and hear 503;
    // then all go. Nothing on them was accepted. (Past the deadline this cuts running events too:
    // never acknowledged, Segment retries them.)
    server.closeIdleConnections();
    await Promise.race([stopped, deadline, delay(GRACE_MS, undefined, { ref: false })]);
    server.closeAllConnections();
    // Node's HTTP layer knows a TLS connection once its handshake is done: the others would hold `stopped`.
    slots.closeAll();
    await stopped;
  } finally {
    clearTimeout(timer);
  }
}
