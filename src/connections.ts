import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Chain, type Linked } from './chain.ts';
import { lastOnConnection } from './connection-end.ts';
import type { ErrorCode } from './errors.ts';
import { rawRefusal } from './respond.ts';

// What happens on a connection around its requests: who holds a slot, which answers are still to be
// written, and the refusals Node's parser makes before a request exists.

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

/**
 * Node's parser refused what came on a connection (malformed HTTP, a version other than HTTP/1.x, headers
 * too large or too slow). Answer in JSON like every other refusal, then close: the stream cannot be
 * trusted. Requests pipelined before the bad one are answered first, in order (RFC 9112 §9.3.2): the
 * refusal waits for the responses in progress on the connection.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  // HPE_PAUSED: the client pipelined past what Node holds for it (the answers queued behind a pending
  // one), Node paused its parser, and the bytes that came meanwhile were dropped unread. Nothing the
  // client sent is malformed, and what follows would be read from the middle of a request: the
  // connection ends here. Its requests not answered yet are retried by the sender (those already taken
  // are then answered as duplicates).
  // Anything but a refusal of Node's HTTP parser (a TLS handshake failed or past its deadline, a socket
  // error) came before HTTP or without it: nobody on the connection reads an HTTP answer, and one written
  // into a TLS connection without a handshake is never flushed, which would keep it open for good.
  if (!isHttpRefusal(err) || err.code === 'HPE_PAUSED' || !socket.writable) {
    socket.destroy();
    return;
  }
  // The parser repeats its error for every later chunk: one refusal per connection.
  if (refusing.has(socket)) return;
  refusing.add(socket);
  refuseAfterPending(socket, clientErrorCode(err));
}

const refusing = new WeakSet<Duplex>();

/** An HTTP refusal: llhttp's (HPE_*), or Node's for headers or a request that came too late. */
const isHttpRefusal = (err: NodeJS.ErrnoException) =>
  err.code !== undefined && (err.code.startsWith('HPE_') || err.code === 'ERR_HTTP_REQUEST_TIMEOUT');

/**
 * CONNECT asks for a tunnel, and Node hands it over apart from the other methods (unlistened, the socket
 * is destroyed unanswered): refused as every method but POST is, and the connection closed.
 */
export function refuseTunnel(_req: IncomingMessage, socket: Duplex): void {
  socket.end(rawRefusal('SEG_METHOD_NOT_ALLOWED', 'Allow: POST\r\n'));
}

type ParseError = NodeJS.ErrnoException & { reason?: string; rawPacket?: Buffer; bytesParsed?: number };

function clientErrorCode(err: ParseError): ErrorCode {
  if (err.code === 'HPE_HEADER_OVERFLOW') return 'SEG_HEADERS_TOO_LARGE';
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'SEG_REQUEST_TIMEOUT';
  // A well-formed version that llhttp does not take (HTTP/3.0, HTTP/1.2; it passes HTTP/0.9 and HTTP/2.0
  // on, and the handler answers those). Its other version errors ("Expected dot", "Invalid minor
  // version") are a garbled request line: a 400. llhttp says "Invalid HTTP version" as soon as it has read
  // DIGIT.DIGIT, before the byte after it, which `bytesParsed` points at: a line break there (or the end
  // of what has come so far) is a well-formed line, anything else (`HTTP/1.31`) a garbled one.
  if (err.code === 'HPE_INVALID_VERSION' && err.reason === 'Invalid HTTP version') {
    const next = err.rawPacket?.[err.bytesParsed ?? 0];
    if (next === undefined || next === 0x0d || next === 0x0a) return 'SEG_HTTP_VERSION';
  }
  return 'SEG_BAD_REQUEST';
}

function refuseAfterPending(socket: Duplex, code: ErrorCode): void {
  if (socket.destroyed || !socket.writable) return;
  // The response now writing to the socket; later pipelined ones queue behind it (lib/_http_server.js).
  const current = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (current === undefined || current === null || current.destroyed) {
    // No answer being written. Unless the request whose body the parser refused was answered already
    // (its answer flushed, then the bad bytes came), this refusal is the malformed request's answer.
    const parser = (socket as Duplex & { parser?: { incoming?: IncomingMessage | null } | null }).parser;
    if (parser?.incoming?.complete === false) socket.end();
    else socket.end(rawRefusal(code));
  } else if (!current.req.complete) {
    // The request whose body the parser refused. Answered already (refused on its headers, or /health):
    // a second answer would follow the first, so the connection just ends after it.
    if (current.headersSent) current.once('close', () => socket.writable && socket.end());
    else socket.end(rawRefusal(code));
  } else if (!current.shouldKeepAlive) {
    // The answer closes the connection (an HTTP/1.0 request without keep-alive): nothing follows it.
  } else if (lastOnConnection(current.req)) {
    // The last answer before the refusal, which follows it at once: before Node's own 'finish' listener
    // may end the connection after it (a sender that half-closed its side: resOnFinish, `_last`).
    current.prependOnceListener('finish', () => socket.writable && socket.end(rawRefusal(code)));
  } else {
    // Rare (bad requests behind several good ones): a closure here costs nothing on the hot path. After
    // Node's own 'finish' listener, which runs first, the connection is the next pipelined response's.
    // Not its 'close', a tick later: the answers behind may all be written by then, and the connection
    // ended after the last.
    current.once('finish', () => refuseAfterPending(socket, code));
  }
}
