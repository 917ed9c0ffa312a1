import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { endsWithItsAnswers, lastOnConnection } from './connection-end.ts';
import type { ErrorCode } from './errors.ts';
import { rawRefusal } from './respond.ts';

// The refusals Node's parser makes on a connection before a request exists (the server's 'clientError'
// and 'connect'), answered in JSON like every other refusal.

/**
 * Node's parser refused what came on a connection (malformed HTTP, a version other than HTTP/1.x, headers
 * too large or too slow). Answer in JSON like every other refusal, then close: the stream cannot be
 * trusted. Requests pipelined before the bad one are answered first, in order (RFC 9112 §9.3.2): the
 * refusal waits for the responses in progress on the connection.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex, slots: ConnectionsSeen): void {
  const refusal = isHttpRefusal(err);
  // The parser repeats its error for every later chunk: one refusal per connection. (Its connection may
  // have ended already, and still be read: `lingeringClose`.)
  if (refusal && refusing.has(socket)) return;
  // Anything but a refusal of Node's HTTP parser (a TLS handshake failed or past its deadline, a socket
  // error) came before HTTP or without it: nobody on the connection reads an HTTP answer, and one written
  // into a TLS connection without a handshake is never flushed, which would keep it open for good.
  if (!refusal || !socket.writable) {
    socket.destroy();
    return;
  }
  refusing.add(socket);
  if (err.code === 'HPE_PAUSED') {
    // Busy until it closes: not the idle connection closed (reset) to admit a newcomer at maxConnections.
    slots.linger(socket);
    endAfterOwed(socket, slots.answersOn(socket));
  } else refuseAfterPending(socket, clientErrorCode(err));
}

const refusing = new WeakSet<Duplex>();

/** What the connection slots (connections.ts) know of a connection's answers, and are told of its end. */
export interface ConnectionsSeen {
  answersOn(socket: Duplex): readonly ServerResponse[];
  linger(socket: Duplex): void;
}

/**
 * HPE_PAUSED: the client pipelined past what Node holds for it (the answers queued behind a pending one),
 * Node paused its parser, and the bytes that came meanwhile were dropped unread (over TLS, what the TLS
 * layer had already decrypted). Nothing the client sent is malformed, but the connection cannot go on:
 * what follows would be read from the middle of a request. It ends once the answers owed on it are
 * written, those of the requests read whole, whose events may be taken; a request the dropped bytes cut
 * is never answered (nothing of it was taken), nor is anything sent after them. Its sender sends them
 * again.
 */
function endAfterOwed(socket: Duplex, answers: readonly ServerResponse[]): void {
  endsWithItsAnswers(socket);
  // Node resumes a paused parser once the answers drain (socketOnDrain, lib/_http_server.js, while
  // `_paused`), from the middle of the stream: the rest of a request cut here would be read from later
  // ones (an event spliced from two), and taken. Not paused, as Node sees it, the parser stays paused: what
  // comes from now on is dropped by it, refused again (ignored, above). And it is read: a connection
  // closed on bytes it has not read is reset, and a reset makes the client discard the answers it has
  // not read yet, 200s of events taken.
  const connection = socket as Duplex & { _paused?: boolean; destroySoon?: () => void };
  connection._paused = false;
  connection.destroySoon = lingeringClose; // what Node calls after the answer that ends the connection
  socket.resume();
  const owed = answers.filter((res) => res.req.complete);
  const last = owed.at(-1);
  if (last === undefined || last.writableFinished) {
    lingeringClose.call(socket);
  } else if (!last.headersSent) {
    last.shouldKeepAlive = false; // Node then says `Connection: close`, and closes after it
  } else {
    (last as ServerResponse & { _last: boolean })._last = true; // Node closes after it (resOnFinish)
  }
}

/** How long a connection ended after HPE_PAUSED goes on reading what its client sends, at most. */
const LINGER_MS = 5_000;

/**
 * Ends the connection `this` after what is written on it, reading what still comes until the client
 * closes its side (then Node closes the connection) or LINGER_MS have passed: the client reads its
 * answers before it sees the connection reset by the bytes it sent meanwhile (a "lingering close").
 */
function lingeringClose(this: Duplex): void {
  this.end();
  setTimeout(() => this.destroy(), LINGER_MS).unref();
}

/** An HTTP refusal: llhttp's (HPE_*), or Node's for headers or a request that came too late. */
const isHttpRefusal = (err: NodeJS.ErrnoException) =>
  err.code !== undefined && (err.code.startsWith('HPE_') || err.code === 'ERR_HTTP_REQUEST_TIMEOUT');

/**
 * CONNECT asks for a tunnel, and Node hands it over apart from the other methods (unlistened, the socket
 * is destroyed unanswered): refused as every method but POST is, and the connection closed, after the
 * answers to the requests before it (a 405 written first would be read as their answer).
 */
export function refuseTunnel(_req: IncomingMessage, socket: Duplex): void {
  refuseAfterPending(socket, 'SEG_METHOD_NOT_ALLOWED', 'Allow: POST\r\n');
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

function refuseAfterPending(socket: Duplex, code: ErrorCode, headers = ''): void {
  if (socket.destroyed || !socket.writable) return;
  // The response now writing to the socket; later pipelined ones queue behind it (lib/_http_server.js).
  const current = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (current === undefined || current === null || current.destroyed) {
    // No answer being written. Unless the request whose body the parser refused was answered already
    // (its answer flushed, then the bad bytes came), this refusal is the malformed request's answer.
    const parser = (socket as Duplex & { parser?: { incoming?: IncomingMessage | null } | null }).parser;
    if (parser?.incoming?.complete === false) socket.end();
    else socket.end(rawRefusal(code, headers));
  } else if (!current.req.complete) {
    // The request whose body the parser refused. Answered already (refused on its headers, or /health):
    // a second answer would follow the first, so the connection just ends after it.
    if (current.headersSent) current.once('close', () => socket.writable && socket.end());
    else socket.end(rawRefusal(code, headers));
  } else if (!current.shouldKeepAlive) {
    // The answer closes the connection (an HTTP/1.0 request without keep-alive): nothing follows it.
  } else if (lastOnConnection(current.req)) {
    // The last answer before the refusal, which follows it at once: before Node's own 'finish' listener
    // may end the connection after it (a sender that half-closed its side: resOnFinish, `_last`).
    current.prependOnceListener('finish', () => socket.writable && socket.end(rawRefusal(code, headers)));
  } else {
    // Rare (bad requests behind several good ones): a closure here costs nothing on the hot path. After
    // Node's own 'finish' listener, which runs first, the connection is the next pipelined response's.
    // Not its 'close', a tick later: the answers behind may all be written by then, and the connection
    // ended after the last.
    current.once('finish', () => refuseAfterPending(socket, code, headers));
  }
}
