import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Chain, type Linked } from './chain.ts';

// What happens on a connection around its requests: who holds a slot, and which answers are still to be
// written. What Node's parser refuses before a request exists is answered in client-errors.ts.

/**
 * Who holds the `maxConnections` slots. A connection is busy while a request on it is in progress, and
 * idle otherwise: just accepted, in its TLS handshake, half way through its request's headers, or
 * between keep-alive requests. At the cap a newcomer takes the slot of the longest idle connection,
 * which is closed; only when every connection is busy is the newcomer closed instead. So connections
 * that hold a slot without using it (idle keep-alive, slow headers) cannot lock clients out, and memory
 * stays bounded by the cap either way.
 *
 * Node's own `server.maxConnections` refuses the newcomer whatever the others are doing. Here each
 * connection has a record, found by its socket, and the idle ones are linked in the order they became
 * idle: the longest idle is the list's head, and a request starting or finishing only moves its record
 * in or out of the list. No hash table changes per request (a Set and a Map updated on every request
 * cost several µs an event under load, bench/README.md).
 *
 * The slots also count the answers begun and not yet flushed, so that a shutdown cuts none short
 * (`settled`). An answer is done with when its response closes, but Node does not close every response:
 * requests pipelined behind an answer that closed the connection (a refusal, a request that asked for
 * it) are never answered (lib/_http_server.js writes nothing queued behind it), and their responses never
 * report anything. When a connection closes, those left waiting for their turn are done with too.
 */
export class ConnectionSlots {
  readonly #max: number;
  readonly #slots = new Map<Socket, Slot>();
  /** The idle connections, longest idle first. */
  readonly #idle = new Chain<Slot>();
  /** Answers begun and not yet flushed or abandoned, on every connection. */
  #answering = 0;
  #waiters: Array<() => void> = [];
  /** A response's 'close' listener (`this` is the response): one function for all. */
  readonly #closed: (this: ServerResponse) => void;

  constructor(max: number) {
    this.#max = max;
    const slots = this;
    this.#closed = function closed(this: ServerResponse) {
      slots.#finished(this);
    };
  }

  /** Connections holding a slot now. */
  get size(): number {
    return this.#slots.size;
  }

  /** On the server's 'connection' event: the TCP connection, before any TLS handshake. */
  admit(socket: Socket): void {
    if (this.#slots.size >= this.#max) {
      const longestIdle = this.#idle.head;
      if (longestIdle === undefined) {
        socket.destroy();
        return;
      }
      // Its slot is free from now on (its 'close', later, finds no record).
      this.#slots.delete(longestIdle.socket);
      this.#idle.remove(longestIdle);
      longestIdle.socket.destroy();
    }
    const slot: Slot = { socket, answering: [], prev: undefined, next: undefined };
    this.#slots.set(socket, slot);
    this.#idle.push(slot);
    socket.once('close', () => this.#gone(socket));
  }

  /** A request arrived on `req.socket`; `res` is its answer, done with once it closes. */
  started(req: IncomingMessage, res: ServerResponse): void {
    this.#answering++;
    res.on('close', this.#closed); // emitted once: no once() wrapper needed
    const slot = this.#slots.get(tcpSocket(req.socket));
    // Pipelined behind a request still in progress, the connection is busy already; closed: no record.
    if (slot !== undefined && slot.answering.push(res) === 1) this.#idle.remove(slot);
  }

  /** Closes every connection still open, whatever it is doing. */
  closeAll(): void {
    for (const socket of this.#slots.keys()) socket.destroy();
  }

  /** Resolves once every answer begun is flushed or abandoned. */
  settled(): Promise<void> {
    return this.#answering === 0 ? Promise.resolve() : new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** The answer `res` was flushed, or abandoned. */
  #finished(res: ServerResponse): void {
    this.#done(1);
    const slot = this.#slots.get(tcpSocket(res.req.socket));
    if (slot === undefined) return; // closed meanwhile
    const { answering } = slot;
    // In order as a rule: Node flushes a connection's answers in the order of its requests.
    const at = answering[0] === res ? 0 : answering.indexOf(res);
    if (at === -1) return;
    if (at === 0) answering.shift();
    else answering.splice(at, 1);
    if (answering.length === 0) this.#idle.push(slot);
  }

  /**
   * A connection closed. Its answer being written, if any, still closes; those queued behind it never
   * will: Node assigns a connection to an answer only once the one before is flushed (`res.socket`).
   */
  #gone(socket: Socket): void {
    const slot = this.#slots.get(socket);
    if (slot === undefined) return; // its slot was taken by a newcomer
    this.#slots.delete(socket);
    if (slot.answering.length === 0) {
      this.#idle.remove(slot);
      return;
    }
    const stranded = slot.answering.filter((res) => res.socket === null && !res.writableFinished);
    slot.answering = [];
    this.#done(stranded.length);
  }

  #done(answers: number): void {
    this.#answering -= answers;
    if (this.#answering === 0 && this.#waiters.length > 0) {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const wake of waiters) wake();
    }
  }
}

/** A connection's record: the answers in progress on it, in order, and its place among the idle ones. */
interface Slot extends Linked<Slot> {
  readonly socket: Socket;
  answering: ServerResponse[];
}

/**
 * The TCP socket a request came on. Over TLS the request's socket is a TLSSocket wrapping the TCP socket
 * the server's 'connection' event gave; Node keeps that one as `_parent` (lib/_tls_wrap.js).
 */
function tcpSocket(socket: Duplex): Socket {
  return (socket as Socket & { _parent?: Socket | null })._parent ?? (socket as Socket);
}
