import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { ERRORS, type ErrorCode } from './errors.ts';

// What happens on a connection around its requests: the refusals Node's parser makes before a request
// exists.

/**
 * Node's parser refused what came on a connection (malformed HTTP, a version other than HTTP/1.x, headers
 * too large or too slow). Answer in JSON like every other refusal, then close: the stream cannot be
 * trusted. Requests pipelined before the bad one are answered first, in order (RFC 9112 §9.3.2): the
 * refusal waits for the responses in progress on the connection.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  // The parser repeats its error for every later chunk: one refusal per connection.
  if (refusing.has(socket)) return;
  refusing.add(socket);
  refuseAfterPending(socket, clientErrorCode(err));
}

const refusing = new WeakSet<Duplex>();

function clientErrorCode(err: NodeJS.ErrnoException & { reason?: string }): ErrorCode {
  if (err.code === 'HPE_HEADER_OVERFLOW') return 'SEG_HEADERS_TOO_LARGE';
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'SEG_REQUEST_TIMEOUT';
  // A well-formed version that llhttp does not take (HTTP/3.0, HTTP/1.2; it passes HTTP/0.9 and HTTP/2.0
  // on, and the handler answers those). Its other version errors ("Expected dot", "Invalid minor
  // version") are a garbled request line: a 400.
  if (err.code === 'HPE_INVALID_VERSION' && err.reason === 'Invalid HTTP version') return 'SEG_HTTP_VERSION';
  return 'SEG_BAD_REQUEST';
}

function refuseAfterPending(socket: Duplex, code: ErrorCode): void {
  if (socket.destroyed || !socket.writable) return;
  const pending = responseInProgress(socket);
  if (pending !== undefined) {
    // Rare (a bad request behind a good one): a closure here costs nothing on the hot path. By the
    // response's 'close', Node has handed the connection to the next pipelined response, if any.
    pending.once('close', () => refuseAfterPending(socket, code));
    return;
  }
  const { status, message } = ERRORS[code];
  const body = JSON.stringify({ message, code });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * The response now writing to `socket`, when its request was received whole. Node keeps it as
 * `socket._httpMessage` (lib/_http_server.js; later pipelined responses queue behind it). A request
 * that is not complete is the one the parser refused: its refusal goes out at once.
 */
function responseInProgress(socket: Duplex): ServerResponse | undefined {
  const res = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  return res?.req.complete === true && !res.destroyed ? res : undefined;
}
