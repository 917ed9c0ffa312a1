import type { IncomingMessage, ServerResponse } from 'node:http';
import { LINGER_MS } from './connection-end.ts';

// Requests of an HTTP/2 host (node:http2's compatibility API; fastify's `http2`): each on a stream of its
// own, many streams on one connection. Headers that are about a connection (Connection, Keep-Alive,
// Transfer-Encoding) do not exist there (RFC 9113 §8.2.2), a body is framed by its stream, with or without
// a Content-Length (§8.1.1), and what ends with a request is its stream, not its connection.

/** The stream an HTTP/2 request came on, as much of it as the handler uses. */
interface RequestStream {
  close(code?: number): void;
  readonly closed: boolean;
  readonly session?: Session | undefined;
}

/** An HTTP/2 connection, as much of it as the handler uses. */
interface Session {
  close(): void;
  once(event: 'close', listener: () => void): unknown;
}

/** Whether `req` came on an HTTP/2 stream (an HTTP/1 request line that says `HTTP/2.0` has none). */
export function isHttp2(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 2 && streamOf(req) !== undefined;
}

/**
 * Whether the request's stream was reset by its sender. Node's HTTP/2 compatibility API then ends the
 * request ('end', `readableEnded`) without destroying it: what came of its body would pass for all of it.
 */
export function wasReset(req: IncomingMessage): boolean {
  return (req as { aborted?: unknown }).aborted === true && isHttp2(req);
}

/**
 * A header's values joined as Node's HTTP/1 parser joins a repeated one (`gzip, identity`): over HTTP/2
 * Node keeps only the first value of a header it takes as single (Content-Encoding), and a body coded
 * twice would be read as coded once, where the same request over HTTP/1.1 is refused.
 */
export function joinedHeader(req: IncomingMessage, name: string): string | undefined {
  const first = req.headers[name];
  if (typeof first !== 'string' || !isHttp2(req)) return first as string | undefined;
  const values: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const header = raw[i] as string;
    if (header.length === name.length && header.toLowerCase() === name) values.push(raw[i + 1] as string);
  }
  return values.length > 1 ? values.join(', ') : first;
}

/**
 * The rest of a body not read to its end, on a stream answered already: read and dropped, as HTTP/1's
 * lingering close drops it, so that the sender reads its answer and the connection's flow control is not
 * held by it; a body still coming LINGER_MS later is cut (RST_STREAM CANCEL), the connection serving on.
 * (Ending the stream at once with NO_ERROR, RFC 9113 §8.1, left node:http2's own client waiting for
 * good.)
 */
export function endStream(req: IncomingMessage): void {
  const stream = streamOf(req);
  if (stream === undefined || stream.closed) return;
  req.resume();
  const cut = setTimeout(() => stream.closed || stream.close(CANCEL), LINGER_MS).unref();
  req.once('close', () => clearTimeout(cut));
}

const CANCEL = 8; // NGHTTP2_CANCEL
const INTERNAL_ERROR = 2; // NGHTTP2_INTERNAL_ERROR

/**
 * Cuts an answer that cannot be finished (its host's headers sent first, a write that threw) so that its
 * sender hears a failure and retries. Over HTTP/2, `res.destroy()` ends the stream with NO_ERROR, which
 * reads as a complete answer (RFC 9113 §8.1): the stream is reset with INTERNAL_ERROR instead.
 */
export function cutAnswer(res: ServerResponse): void {
  const req: IncomingMessage | undefined = res.req;
  const stream = req !== undefined && isHttp2(req) ? streamOf(req) : undefined;
  if (stream === undefined) res.destroy();
  else if (!stream.closed) stream.close(INTERNAL_ERROR);
}

/**
 * While the handler drains: the HTTP/2 connection `req` came on takes no new stream (GOAWAY) and closes
 * once its streams are answered, as an HTTP/1 connection closes with its last answer.
 */
export function endSession(req: IncomingMessage): void {
  streamOf(req)?.session?.close();
}

/**
 * The HTTP/2 connections requests came on, still open: when the handler drains, those that sit idle get
 * no answer to carry their GOAWAY, and node:http2's server.close() would wait on them for good. Noted
 * once a connection (a Set changed per connection, never per request).
 */
export class Http2Sessions {
  readonly #open = new Set<Session>();

  note(req: IncomingMessage): void {
    const session = streamOf(req)?.session;
    if (session === undefined || this.#open.has(session)) return;
    this.#open.add(session);
    session.once('close', () => this.#open.delete(session));
  }

  /** Every connection takes no new stream (GOAWAY) and closes once its streams are answered. */
  closeAll(): void {
    for (const session of this.#open) session.close();
  }
}

function streamOf(req: IncomingMessage): RequestStream | undefined {
  const { stream } = req as IncomingMessage & { stream?: Partial<RequestStream> | null };
  return typeof stream?.close === 'function' ? (stream as RequestStream) : undefined;
}
