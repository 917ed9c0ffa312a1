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
  /** The answer being written at the last sweep, the bytes flushed then, and when they last grew. */
  head: ServerResponse | undefined;
  flushed: number;
  movedAt: number;
  /** In a lingering close: busy whatever its answers (`linger`). */
  lingering: boolean;
  /** When it was accepted (`performance.now()`), and whether a request has come on it since. */
  readonly acceptedAt: number;
  requested: boolean;
}

/**
 * The TCP socket a request came on. Over TLS the request's socket is a TLSSocket wrapping the TCP socket
 * the server's 'connection' event gave; Node keeps that one as `_parent` (lib/_tls_wrap.js).
 */
export function tcpSocket(socket: Duplex): Socket {
  return (socket as Socket & { _parent?: Socket | null })._parent ?? (socket as Socket);
}

/** Calls every waiter; the list to wait in from now on. */
export function wake(waiters: Array<() => void>): Array<() => void> {
  for (const resolve of waiters) resolve();
  return [];
}
