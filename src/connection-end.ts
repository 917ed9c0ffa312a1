import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { readOnReadable } from './taken-by-host.ts';

// Where a connection ends, as the answers written on it decide. Node writes nothing queued behind an
// answer that ends its connection, and still hands over the requests it reads behind it: what is read
// there is never answered. And how it ends when its client may still be sending: a lingering close.

/**
 * Whether no request has come after `req` on its connection: Node's parser keeps the last request it
 * read as `parser.incoming` (lib/_http_common.js). An answer that closes its connection must be the last
 * one on it, since Node writes nothing queued behind it (lib/_http_server.js, resOnFinish): requests
 * pipelined behind would go unanswered, their events taken. Without a parser it is (a closed connection,
 * an injected request), unless Node freed the parser for a CONNECT read behind it: then the connection's
 * slot says which answer is the last owed (`tunnelled`).
 */
export function lastOnConnection(req: IncomingMessage): boolean {
  const socket = req.socket as IncomingMessage['socket'] & { parser?: { incoming?: unknown } | null };
  const parser = socket?.parser;
  if (!parser && socket) {
    const lastOwed = tunnels.get(socket);
    if (lastOwed !== undefined) return lastOwed()?.req === req;
  }
  const latest = parser?.incoming;
  return latest === undefined || latest === null || latest === req;
}

// Connections on which Node has read a CONNECT, and freed the parser: the last answer owed on each.
const tunnels = new WeakMap<object, () => ServerResponse | undefined>();

/** Notes that Node freed `socket`'s parser for a CONNECT; `lastOwed` is its last answer owed, if any. */
export function tunnelled(socket: Duplex, lastOwed: () => ServerResponse | undefined): void {
  tunnels.set(socket, lastOwed);
}

// Connections an answer of ours (respond.ts) ends: we say so (a refusal, a drain), or Node decided it (the
// client's `Connection: close`, HTTP/1.0, a body expected but never invited). Node still hands over the
// requests it reads behind such an answer (pipelined, or sent before the close reached the client), and
// writes none of their answers: an event taken from one would be stored with no 200 to say so, and
// stored again when its sender retried.
const closing = new WeakSet<object>();

/** Whether the answer `res`, its headers written, ends its connection (Node's `_last`). */
const endsConnection = (res: ServerResponse): boolean =>
  (res as ServerResponse & { _last?: boolean })._last === true;

/**
 * Notes the connection of `res` if the answer just written on it ends it, and makes that end a lingering
 * close: its client may still be sending (keep-alive requests, pipelined ones) with earlier 200s unread.
 */
export function noteEnd(res: ServerResponse): void {
  if (!endsConnection(res)) return;
  endsItsConnection(res.req);
  const { socket } = res.req;
  if (!isConnection(socket)) return;
  ended.add(socket);
  lingerAtEnd(socket);
}

// Connections whose last answer is written (`noteEnd`): nothing read on them from now on is answered.
const ended = new WeakSet<object>();

/** Whether the answer that ends the connection `socket` is written: what comes now is only dropped. */
export const endedByAnswer = (socket: object): boolean => ended.has(socket);

/** Whether `socket` is a connection Node ends (`destroySoon`), not an injected request's stand-in. */
const isConnection = (socket: Duplex | null): socket is Duplex =>
  typeof (socket as (Duplex & { destroySoon?: unknown }) | null)?.destroySoon === 'function';

/** Notes that the answer to `req` ends its connection (none to note for a fetch handler's Request). */
export function endsItsConnection(req: IncomingMessage | undefined): void {
  const socket: unknown = req?.socket;
  if (typeof socket === 'object' && socket !== null) closing.add(socket);
}

/** Whether an answer already written on `req`'s connection ends it: `req` can never be answered. */
export const behindClosingAnswer = (req: IncomingMessage): boolean => closing.has(req.socket);

/**
 * Stops Node's parser on `req`'s connection once it has parsed what it holds now: `req` came behind an
 * answer that ends the connection, and so would every request after it, each kept by Node (and by the
 * connection slots) until the connection closes, never answered. Read on through a lingering close, a
 * client that keeps its side open sent hundreds of thousands in its 5 s. What still comes is dropped:
 * by the paused parser (its HPE_PAUSED ignored by client-errors.ts, `stoppedBehind`), or with the
 * connection where no one listens for the parser's errors (a host's server).
 */
export function readNothingBehind(req: IncomingMessage): void {
  readNothingMore(req.socket);
}

/** Stops Node's parser on the connection HTTP reads from, `socket`, once it has parsed what it holds now. */
export function readNothingMore(socket: Duplex | null): void {
  const connection = socket as (Duplex & { parser?: { pause?: () => void } | null }) | null;
  if (typeof connection?.parser?.pause !== 'function') return;
  connection.parser.pause();
  stopped.add(connection);
}

const stopped = new WeakSet<object>();

/** Whether `readNothingMore` paused the parser of `connection`: the HPE_PAUSED that follows is ours. */
export const stoppedBehind = (connection: object): boolean => stopped.has(connection);

/** 5 s: how long a connection in its lingering close goes on reading what its client sends, at most. */
export const LINGER_MS = 5_000;

/**
 * Ends the connection `this` after what is written on it, reading what still comes until the client
 * closes its side (then Node closes the connection) or LINGER_MS have passed. Closed while bytes still
 * come, a connection is reset by them, and a client that has not read its answers yet, or is still
 * writing, sees the reset instead of them (a "lingering close", as nginx and Apache make it).
 */
function lingeringClose(this: Duplex): void {
  this.end();
  closeWithin(this);
}

/**
 * Destroys `socket` LINGER_MS from now unless it closes first: a client that keeps its side open holds it
 * no longer.
 */
export function closeWithin(socket: Duplex): void {
  const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once('close', () => clearTimeout(timer));
}

/**
 * An answer that ends its connection before its request's body was read whole (a 413 on the
 * Content-Length, a 408, a refusal on the headers): the client may still be sending the body. The rest
 * is read and dropped until the client closes, in the lingering close `noteEnd` set, rather than the
 * connection reset under the client's writes.
 */
export function dropRestOfBody(req: IncomingMessage, res: ServerResponse): void {
  if (req.complete || !endsConnection(res) || !isConnection(req.socket)) return;
  // The body reader stopped at the refusal; what still comes of the body is read, and dropped.
  req.resume();
  readOnReadable(req);
}

/**
 * The connection `socket` ends in a lingering close once its last answer is written: `destroySoon` is
 * what Node calls then (lib/_http_server.js, resOnFinish), and its own ends the connection at once.
 */
export function lingerAtEnd(socket: Duplex): void {
  (socket as Duplex & { destroySoon?: () => void }).destroySoon = lingeringClose;
}

/** A lingering close now, the connection's answers all written. */
export function lingerNow(socket: Duplex): void {
  lingeringClose.call(socket);
}

/**
 * Ends the connection HTTP reads from, `socket`, after what is written on it: no request is read on it
 * any more, and it ends in a lingering close. One ending already (an answer closed it: `noteEnd`) lingers.
 */
export function endLingering(socket: Duplex): void {
  if (socket.writableEnded || socket.destroyed) return;
  readNothingMore(socket);
  lingerNow(socket);
}

/**
 * At a shutdown: the connection HTTP reads from, `socket`, ends in a lingering close once the answers in
 * progress on it (`answering`) are written, `graceMs` from now. Not at once, even between requests: a
 * client that has had its answer may be sending its next request, and a connection ended under it gets
 * no answer at all ("socket hang up"). A request that comes meanwhile, or one half way through, is
 * answered 503 with `Connection: close`, which ends the connection so; then it ends anyway.
 */
export function endAtShutdown(
  socket: Duplex,
  answering: () => readonly ServerResponse[],
  graceMs: number,
): void {
  const end = () => {
    const last = answering().at(-1);
    if (last === undefined || last.writableFinished) endLingering(socket);
    else last.once('finish', () => endLingering(socket));
  };
  const timer = setTimeout(end, graceMs).unref();
  socket.once('close', () => clearTimeout(timer));
}
