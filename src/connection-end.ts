import type { IncomingMessage, ServerResponse } from 'node:http';

// Where a connection ends, as the answers written on it decide. Node writes nothing queued behind an
// answer that ends its connection, and still hands over the requests it reads behind it: what is read
// there is never answered.

/**
 * Whether no request has come after `req` on its connection: Node's parser keeps the last request it
 * read as `parser.incoming` (lib/_http_common.js). An answer that closes its connection must be the last
 * one on it, since Node writes nothing queued behind it (lib/_http_server.js, resOnFinish): requests
 * pipelined behind would go unanswered, their events taken. Without a parser (a closed connection, an
 * injected request) it is.
 */
export function lastOnConnection(req: IncomingMessage): boolean {
  const socket = req.socket as IncomingMessage['socket'] & { parser?: { incoming?: unknown } | null };
  const latest = socket?.parser?.incoming;
  return latest === undefined || latest === null || latest === req;
}

// Connections an answer of ours (respond.ts) ends: we say so (a refusal, a drain), or Node decided it (the
// client's `Connection: close`, HTTP/1.0, a body expected but never invited). Node still hands over the
// requests it reads behind such an answer (pipelined, or sent before the close reached the client), and
// writes none of their answers: an event taken from one would be stored with no 200 to say so, and
// stored again when its sender retried.
const closing = new WeakSet<object>();

/** Notes the connection of `res` if the answer just written on it ends it (Node's `_last`). */
export function noteEnd(res: ServerResponse): void {
  if ((res as ServerResponse & { _last?: boolean })._last === true) endsItsConnection(res.req);
}

/** Notes that the answer to `req` ends its connection (none to note for a fetch handler's Request). */
export function endsItsConnection(req: IncomingMessage | undefined): void {
  const socket: unknown = req?.socket;
  if (typeof socket === 'object' && socket !== null) closing.add(socket);
}

/** Whether an answer already written on `req`'s connection ends it: `req` can never be answered. */
export const behindClosingAnswer = (req: IncomingMessage): boolean => closing.has(req.socket);
