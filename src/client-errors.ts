import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { closeWithin, endedByAnswer, lastOnConnection, stoppedBehind, tunnelled } from './connection-end.ts';
import { ERRORS, type ErrorCode } from './errors.ts';
import type { Logger } from './log.ts';
import { endAfterOwed, type PausedSlots } from './paused-connection.ts';
import { rawRefusal } from './respond.ts';

// The refusals Node's parser makes on a connection before a request exists (the server's 'clientError'
// and 'connect'), answered in JSON like every other refusal.

/**
 * Node's parser refused what came on a connection (malformed HTTP, a version other than HTTP/1.x, headers
 * too large or too slow). Answer in JSON like every other refusal, then close: the stream cannot be
 * trusted. Requests pipelined before the bad one are answered first, in order (RFC 9112 §9.3.2): the
 * refusal waits for the responses in progress on the connection. HPE_PAUSED is no refusal: the connection
 * ends after the answers owed on it (paused-connection.ts). Returns the refusal's code, if one is sent.
 */
export function answerClientError(
  err: NodeJS.ErrnoException,
  socket: Duplex,
  slots: PausedSlots,
  told: Told = ignore,
): ErrorCode | undefined {
  const refusal = isHttpRefusal(err);
  // The parser repeats its error for every later chunk: one refusal per connection. (Its connection may
  // have ended already, and still be read: a lingering close.)
  if (refusal && refusing.has(socket)) return undefined;
  // The handler paused the parser behind an answer that ends the connection (readNothingBehind), or the
  // parser refuses what comes after one written (HPE_CLOSED_CONNECTION after a `Connection: close`, junk
  // after draining's 503): it is dropped while the connection ends, in its lingering close.
  if ((err.code === 'HPE_PAUSED' && stoppedBehind(socket)) || (refusal && endedByAnswer(socket))) {
    return undefined;
  }
  // Anything but a refusal of Node's HTTP parser (a TLS handshake failed or past its deadline, a socket
  // error) came before HTTP or without it: nobody on the connection reads an HTTP answer, and one written
  // into a TLS connection without a handshake is never flushed, which would keep it open for good.
  if (!refusal || !socket.writable) {
    socket.destroy();
    return undefined;
  }
  refusing.add(socket);
  if (err.code === 'HPE_PAUSED') {
    endAfterOwed(socket, slots);
    return undefined;
  }
  const answer = clientRefusal(err);
  refuseAfterPending(socket, answer, '', told);
  return answer.code;
}

const refusing = new WeakSet<Duplex>();

/** Told once whether the refusal `code` was written (true), or the connection ended without it (false). */
type Told = (code: ErrorCode, sent: boolean) => void;
const ignore: Told = () => {};

/**
 * The server's 'clientError' listener: answerClientError, and with an access log (`accessLog`), a line
 * beside the event requests' for each refusal, which a smuggling attempt's 400 otherwise left nowhere.
 */
export function clientErrors(
  slots: PausedSlots,
  accessLog: Logger | undefined,
): (err: NodeJS.ErrnoException, socket: Duplex) => void {
  if (accessLog === undefined) return (err, socket) => answerClientError(err, socket, slots);
  return (err, socket) => {
    // Without a status when none was sent: the request was answered already, or its sender cut it short.
    answerClientError(err, socket, slots, (code, sent) => {
      const status = sent ? ERRORS[code].status : undefined;
      accessLog.info({ status, code, parser: err.code, answered: sent }, refusedAs(err));
    });
  };
}

/** What the access log calls Node's refusal: a request that came too late is not malformed. */
const refusedAs = (err: NodeJS.ErrnoException) =>
  err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'request timed out' : 'malformed request';

/** An HTTP refusal: llhttp's (HPE_*), or Node's for headers or a request that came too late. */
const isHttpRefusal = (err: NodeJS.ErrnoException) =>
  err.code !== undefined && (err.code.startsWith('HPE_') || err.code === 'ERR_HTTP_REQUEST_TIMEOUT');

/**
 * CONNECT asks for a tunnel, and Node hands it over apart from the other methods (unlistened, the socket
 * is destroyed unanswered): refused as every method but POST is, and the connection closed, after the
 * answers to the requests before it (a 405 written first would be read as their answer).
 */
export function refuseTunnel(socket: Duplex, slots: PausedSlots): void {
  // Node has freed the connection's parser, which said which request came last: the connection's slot
  // knows the answers owed on it, in the order of their requests.
  tunnelled(socket, () => slots.answersOn(socket).at(-1));
  refuseAfterPending(socket, ownRefusal('SEG_METHOD_NOT_ALLOWED'), 'Allow: POST\r\n');
  // Out of Node's timeouts' reach: once the 405 is out, a client keeping its side open holds it no longer.
  socket.once('finish', () => closeWithin(socket));
}

type ParseError = NodeJS.ErrnoException & { reason?: string; rawPacket?: Buffer; bytesParsed?: number };

/** A refusal's code, and what its message says. */
interface Refusal {
  readonly code: ErrorCode;
  readonly message: string;
}

const ownRefusal = (code: ErrorCode): Refusal => ({ code, message: ERRORS[code].message });

/**
 * What Node's parser refused, as answered. A malformed request's message gives llhttp's reason after the
 * catalogue's ("Duplicate Content-Length", "Invalid character in chunk size"): its own fixed words, never
 * the request's bytes.
 */
function clientRefusal(err: ParseError): Refusal {
  const code = clientErrorCode(err);
  const malformed = code === 'SEG_BAD_REQUEST' || code === 'SEG_LENGTH_INVALID';
  if (!malformed || typeof err.reason !== 'string' || err.reason === '') return ownRefusal(code);
  return { code, message: `${ERRORS.SEG_BAD_REQUEST.message}: ${err.reason.slice(0, 200)}` };
}

// A Content-Length llhttp cannot read, or one repeated. Not one beside Transfer-Encoding, which llhttp
// reports under either header's code depending on which came first: framing, a SEG_BAD_REQUEST.
const LENGTH_ERRORS = new Set(['HPE_INVALID_CONTENT_LENGTH', 'HPE_UNEXPECTED_CONTENT_LENGTH']);
const BESIDE_RE = /can't be present with/;

function clientErrorCode(err: ParseError): ErrorCode {
  if (err.code === 'HPE_HEADER_OVERFLOW') return 'SEG_HEADERS_TOO_LARGE';
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'SEG_REQUEST_TIMEOUT';
  if (LENGTH_ERRORS.has(err.code as string) && !BESIDE_RE.test(err.reason ?? '')) return 'SEG_LENGTH_INVALID';
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

function refuseAfterPending(socket: Duplex, refusal: Refusal, headers: string, told: Told = ignore): void {
  const { code } = refusal;
  if (socket.destroyed || !socket.writable) {
    told(code, false);
    return;
  }
  // The response now writing to the socket; later pipelined ones queue behind it (lib/_http_server.js).
  const current = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (current === undefined || current === null || current.destroyed) {
    // No answer being written. Unless the request whose body the parser refused was answered already
    // (its answer flushed, then the bad bytes came), this refusal is the malformed request's answer.
    const parser = (socket as Duplex & { parser?: { incoming?: IncomingMessage | null } | null }).parser;
    if (parser?.incoming?.complete === false) end(socket, refusal, undefined, told);
    else end(socket, refusal, headers, told);
  } else if (!current.req.complete) {
    // The request whose body the parser refused. Answered already (refused on its headers, or /health):
    // a second answer would follow the first, so the connection just ends after it.
    if (current.headersSent) {
      told(code, false);
      current.once('close', () => socket.writable && socket.end());
    } else end(socket, refusal, headers, told);
  } else if (!current.shouldKeepAlive) {
    // The answer closes the connection (an HTTP/1.0 request without keep-alive): nothing follows it.
    told(code, false);
  } else if (lastOnConnection(current.req)) {
    // The last answer before the refusal, which follows it at once: before Node's own 'finish' listener
    // may end the connection after it (a sender that half-closed its side: resOnFinish, `_last`).
    let finished = false; // destroyed before it finished: nothing follows it
    current.prependOnceListener('finish', () => {
      finished = true;
      end(socket, refusal, headers, told);
    });
    current.once('close', () => finished || told(code, false));
  } else {
    // Rare (bad requests behind several good ones): a closure here costs nothing on the hot path. After
    // Node's own 'finish' listener, which runs first, the connection is the next pipelined response's.
    // Not its 'close', a tick later: the answers behind may all be written by then, and the connection
    // ended after the last.
    let finished = false;
    current.once('finish', () => {
      finished = true;
      refuseAfterPending(socket, refusal, headers, told);
    });
    current.once('close', () => finished || told(code, false));
  }
}

/** Ends the connection, with the refusal unless `headers` is undefined, and tells whether it was sent. */
function end(socket: Duplex, refusal: Refusal, headers: string | undefined, told: Told): void {
  const sent = socket.writable && headers !== undefined;
  if (socket.writable) {
    socket.end(headers === undefined ? undefined : rawRefusal(refusal.code, headers, refusal.message));
  }
  told(refusal.code, sent);
}
