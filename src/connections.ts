import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Chain } from './chain.ts';
import { endAtShutdown, endLingering } from './connection-end.ts';
import { overdue, type Slot, tcpSocket } from './connection-record.ts';
import { Sweeps } from './connection-sweeps.ts';
import { Tally } from './tally.ts';

// What happens on a connection around its requests: who holds a slot, and which answers are still to be
// written. What Node's parser refuses before a request exists is answered in client-errors.ts.

/**
 * Who holds the `maxConnections` slots. A connection is busy while a request on it is in progress, or
 * while it lingers after HPE_PAUSED or at a shutdown (`linger`), and idle otherwise: just accepted, in
 * its TLS handshake, half way through its request's headers, or between keep-alive requests. At the cap a
 * newcomer takes the slot of the longest idle connection, which is closed; only when every connection is
 * busy is the newcomer closed instead: a busy one holds answers owed to its client (whose events may be
 * taken), even one that has paused reading them. So connections that hold a slot without using it (idle
 * keep-alive, slow headers) cannot lock clients out, those that never read their answers not for longer
 * than `stallMs`, and memory stays bounded by the cap either way.
 *
 * A busy connection whose answers flush nothing for `stallMs` is closed (`overdue`, connection-record.ts).
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
  readonly #stallMs: number;
  readonly #firstRequestMs: number;
  readonly #sweeps: Sweeps;
  /** Answers begun and not yet flushed or abandoned, on every connection. */
  readonly #answering = new Tally();
  /** Answers counted done with when their connection closed, whose 'close' may come after all. */
  readonly #abandoned = new WeakSet<ServerResponse>();
  /** Connections in their lingering close (`linger`, `evict`, `endAnswered`). */
  readonly #lingering = new Tally();
  /** Connections closed for a newcomer, their slot free, still closing. */
  readonly #evicted = new Set<Duplex>();
  /** A response's 'close' listener (`this` is the response): one function for all. */
  readonly #closed: (this: ServerResponse) => void;

  /**
   * `stallMs`: how long answers may flush nothing before their connection is closed; `firstRequestMs`:
   * how long a connection may go without a first request, its handshake included (Node's header timeout
   * starts once HTTP has the connection, after the handshake: this bounds the two together).
   */
  constructor(max: number, stallMs: number, firstRequestMs: number) {
    this.#max = max;
    this.#stallMs = stallMs;
    this.#firstRequestMs = firstRequestMs;
    // Every second, as Node checks its header and request timeouts (connectionsCheckingInterval), or
    // more often for a shorter stall time: a connection is closed at most two sweeps past it.
    const sweepMs = Math.min(1_000, Math.max(10, Math.ceil(stallMs / 4)));
    this.#sweeps = new Sweeps(sweepMs, (now) => this.sweep(now, performance.now()));
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
      this.#evict(longestIdle);
    }
    const slot: Slot = {
      socket,
      answering: [],
      prev: undefined,
      next: undefined,
      head: undefined,
      flushed: 0,
      queued: 0,
      movedAt: 0,
      lingering: false,
      acceptedAt: performance.now(),
      http: undefined,
    };
    this.#slots.set(socket, slot);
    this.#idle.push(slot);
    socket.once('close', () => this.#gone(socket));
    this.#sweeps.start();
  }

  /** A request arrived on `req.socket`; `res` is its answer, done with once it closes. */
  started(req: IncomingMessage, res: ServerResponse): void {
    this.#answering.add();
    res.on('close', this.#closed); // emitted once: no once() wrapper needed
    const slot = this.#slots.get(tcpSocket(req.socket));
    if (slot === undefined) return; // closed: no record
    slot.http ??= req.socket;
    // Pipelined behind a request still in progress, the connection is busy already.
    if (slot.answering.push(res) === 1 && !slot.lingering) this.#idle.remove(slot);
  }

  /**
   * The connection HTTP reads from `socket` ends in a lingering close (paused-connection.ts, a shutdown):
   * busy until it closes, never the idle one closed to admit a newcomer. Its client may not have read its
   * answers yet and is still sending: closed under what it sent, the connection is reset, and the client
   * discards the 200s it has not read. The lingering close ends it within seconds.
   */
  linger(socket: Duplex): void {
    const slot = this.#slots.get(tcpSocket(socket));
    if (slot === undefined || slot.lingering) return;
    if (slot.answering.length === 0) this.#idle.remove(slot);
    slot.lingering = true;
    this.#lingering.add();
  }

  /** Resolves once no connection is in its lingering close: a shutdown waits for them, not resets them. */
  lingered(): Promise<void> {
    return this.#lingering.whenNone();
  }

  /** The answers in progress on the connection HTTP reads from `socket`, in the order of their requests. */
  answersOn(socket: Duplex): readonly ServerResponse[] {
    return this.#slots.get(tcpSocket(socket))?.answering ?? [];
  }

  /** Closes every connection still open, whatever it is doing. */
  closeAll(): void {
    for (const socket of [...this.#slots.keys(), ...this.#evicted]) socket.destroy();
  }

  /**
   * Closes the busy connections whose answers flushed nothing for `stallMs`, and those that had no first
   * request within `firstRequestMs`, as of `now` (a `Sweeps` turn); what it sees is noted at `seenAt`.
   */
  sweep(now = performance.now(), seenAt = now): void {
    if (this.#slots.size === 0) {
      this.#sweeps.stop();
      return;
    }
    for (const slot of this.#slots.values()) {
      if (overdue(slot, now, this.#stallMs, this.#firstRequestMs, seenAt)) this.#close(slot);
    }
  }

  /** Closes a connection, its slot free from now on (its 'close', a turn later, finds no record). */
  #close(slot: Slot): void {
    this.#release(slot);
    slot.socket.destroy();
  }

  /**
   * Closes the idle connection `slot` to admit a newcomer. It may owe its client answers not read yet
   * (written, in the kernel's buffers), the client still sending: closed under what comes, it is reset,
   * and the client discards those 200s. Once it had a request it ends in a lingering close instead
   * (`endLingering`), and a shutdown waits for it; `max` of them at most, past that reset.
   */
  #evict(slot: Slot): void {
    const { http } = slot;
    if (http === undefined || http.destroyed || this.#evicted.size >= this.#max) {
      this.#close(slot);
      return;
    }
    this.#release(slot);
    this.#evicted.add(http);
    this.#lingering.add();
    http.once('close', () => this.#evicted.delete(http) && this.#lingering.remove());
    endLingering(http);
  }

  /**
   * At a shutdown, every answer begun flushed: each connection that had a request ends in a lingering
   * close (`endLingering`) `graceMs` from now, and `lingered` waits for it. Node's closeIdleConnections
   * resets one whose client still sends, and the client discards the 200s it has not read yet. A request
   * it brings meanwhile, half sent or its client's next, hears 503 (`endAtShutdown`). One with an answer
   * in progress (past the shutdown's deadline) is left to be closed.
   */
  endAnswered(graceMs: number): void {
    for (const slot of this.#slots.values()) {
      const { http } = slot;
      if (http === undefined || http.destroyed || slot.answering.length > 0) continue;
      this.linger(http);
      endAtShutdown(http, () => this.answersOn(http), graceMs);
    }
  }

  /** Resolves once every answer begun is flushed or abandoned. */
  settled(): Promise<void> {
    return this.#answering.whenNone();
  }

  /** The answer `res` was flushed, or abandoned. */
  #finished(res: ServerResponse): void {
    const slot = this.#slots.get(tcpSocket(res.req.socket));
    if (slot === undefined) {
      // Its connection closed meanwhile: an answer counted done with then is not counted twice.
      if (!this.#abandoned.delete(res)) this.#answering.remove();
      return;
    }
    this.#answering.remove();
    const { answering } = slot;
    // In order as a rule: Node flushes a connection's answers in the order of its requests.
    const at = answering[0] === res ? 0 : answering.indexOf(res);
    if (at === -1) return;
    if (at === 0) answering.shift();
    else answering.splice(at, 1);
    if (answering.length === 0 && !slot.lingering) this.#idle.push(slot);
  }

  /**
   * A connection closed. Its answer being written, if any, still closes; those queued behind it, as a rule,
   * never will: Node gives a connection to an answer only once the one before is flushed (`res.socket`).
   * But one destroyed under a pending write finishes that answer, then each queued one closes in turn.
   */
  #gone(socket: Socket): void {
    const slot = this.#slots.get(socket);
    if (slot !== undefined) this.#release(slot); // else its slot was taken by a newcomer
  }

  /** Frees the slot of a connection that closes, or is closed to make room. */
  #release(slot: Slot): void {
    this.#slots.delete(slot.socket);
    if (slot.lingering) this.#lingering.remove();
    if (slot.answering.length === 0) {
      if (!slot.lingering) this.#idle.remove(slot);
      return;
    }
    const stranded = slot.answering.filter((res) => res.socket === null && !res.writableFinished);
    for (const res of stranded) this.#abandoned.add(res);
    slot.answering = [];
    this.#answering.remove(stranded.length);
  }
}
