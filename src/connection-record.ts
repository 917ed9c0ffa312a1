import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Linked } from './chain.ts';

// A connection as the slots (connections.ts) keep it.

/**
 * A connection's record: the answers in progress on it, in order; its place among the idle ones; and
 * what the last sweep saw of it.
 */
export interface Slot extends Linked<Slot> {
  readonly socket: Socket;
  answering: ServerResponse[];
  /**
   * The answer being written at the last sweep, the bytes flushed then, the bytes of a write in progress
   * still queued, and when one of them last moved.
   */
  head: ServerResponse | undefined;
  flushed: number;
  queued: number;
  movedAt: number;
  /** In a lingering close: busy whatever its answers (`linger`). */
  lingering: boolean;
  /** When it was accepted (`performance.now()`); once a request has come, the socket HTTP reads from. */
  readonly acceptedAt: number;
  http: Duplex | undefined;
}

/**
 * The TCP socket a request came on. Over TLS the request's socket is a TLSSocket wrapping the TCP socket
 * the server's 'connection' event gave; Node keeps that one as `_parent` (lib/_tls_wrap.js).
 */
export function tcpSocket(socket: Duplex): Socket {
  return (socket as Socket & { _parent?: Socket | null })._parent ?? (socket as Socket);
}

/**
 * Whether the sweep at `now` closes the connection `slot`: its answers have flushed nothing for `stallMs`,
 * or it had no first request within `firstRequestMs`. What the sweep sees of it is dated `seenAt`: when
 * the sweep runs (later than `now` when it judges as of its turn, `Sweeps`).
 *
 * Node's timeouts cover a request that comes too slowly, not answers that are never taken (requests
 * pipelined by a client that never reads would hold their connection for good). Until it is closed, a
 * stalled connection holds what Node read before it stopped: Node stops reading once the answers queued
 * pass its high-water mark, but only after the read it is parsing (up to 64 KiB of requests, each with
 * its answer: ~0.85 MB of heap for pipelined /health requests; less over TLS, read by 16 KiB). One
 * interval timer sweeps the connections, none is set per request, and nothing is added to the hot path.
 */
export function overdue(
  slot: Slot,
  now: number,
  stallMs: number,
  firstRequestMs: number,
  seenAt = now,
): boolean {
  const head = slot.answering[0]; // the answer being written: Node writes them in turn
  if (head === undefined) {
    slot.head = undefined; // idle: Node's timeouts cover it, once a request has begun
    return slot.http === undefined && now - slot.acceptedAt >= firstRequestMs;
  }
  // The connection as HTTP writes to it (over TLS, the TLS socket: the TCP one never buffers). Its
  // `bytesWritten` counts the bytes buffered too; a write is flushed once its callback is due. One write
  // can hold several answers (those buffered behind the one before): what the kernel takes of it before
  // it is all written shows only in libuv's queue, on the TCP socket.
  const { writableLength, bytesWritten } = head.req.socket;
  const flushed = bytesWritten - writableLength;
  const queued = writeQueue(slot.socket);
  if (writableLength === 0 || head !== slot.head || flushed !== slot.flushed || queued !== slot.queued) {
    slot.head = head;
    slot.flushed = flushed;
    slot.queued = queued;
    slot.movedAt = seenAt;
    return false;
  }
  return now - slot.movedAt >= stallMs;
}

/** The bytes libuv still holds of the writes in progress on `socket` (0 once it is closed). */
const writeQueue = (socket: Socket): number =>
  (socket as Socket & { _handle?: { writeQueueSize?: number } | null })._handle?.writeQueueSize ?? 0;
