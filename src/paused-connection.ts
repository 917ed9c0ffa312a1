import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { lingerAtEnd, lingerNow } from './connection-end.ts';
import type { ConnectionSlots } from './connections.ts';

// How a connection ends when its client pipelined past what Node holds for it (HPE_PAUSED, reported by
// Node's parser to client-errors.ts).

/** What of the connection slots the end needs: the answers in progress, and a slot held till the close. */
export type PausedSlots = Pick<ConnectionSlots, 'answersOn' | 'linger'>;

/**
 * HPE_PAUSED: the client pipelined past what Node holds for it (the answers queued behind a pending one),
 * Node paused its parser, and the bytes that came meanwhile were dropped unread (over TLS, what the TLS
 * layer had already decrypted). Nothing the client sent is malformed, but the connection cannot go on:
 * what follows would be read from the middle of a request. It ends once the answers owed on it are
 * written, those of the requests read whole, whose events may be taken; a request the dropped bytes cut
 * is never answered (nothing of it was taken), nor is anything sent after them. Its sender sends them
 * again.
 */
export function endAfterOwed(socket: Duplex, slots: PausedSlots): void {
  // Busy until it closes: not the idle connection closed (reset) to admit a newcomer at maxConnections.
  slots.linger(socket);
  // Node resumes a paused parser once the answers drain (socketOnDrain, lib/_http_server.js), but only
  // while it sees the socket as paused: with `_paused` cleared the parser stays paused, so no request is
  // read after this one, and the rest of a request cut here is never read from later ones (an event
  // spliced from two, taken). What comes from now on is read, and dropped by the paused parser
  // (HPE_PAUSED again, ignored by client-errors.ts): a connection closed on bytes it has not read is
  // reset, and a reset makes the client discard the answers it has not read yet, 200s of events taken.
  const connection = socket as Duplex & { _paused?: boolean; _httpMessage?: ServerResponse | null };
  connection._paused = false;
  lingerAtEnd(socket);
  socket.resume();
  const owed = slots.answersOn(socket).filter((res) => res.req.complete);
  // The last answer owed; or, none being owed, an answer being written to the request cut (a refusal on
  // its headers), which must not be cut short in turn.
  const writing = connection._httpMessage;
  const last = owed.at(-1) ?? (writing?.headersSent && !writing.writableFinished ? writing : undefined);
  if (last === undefined || last.writableFinished) {
    lingerNow(socket);
  } else if (!last.headersSent) {
    last.shouldKeepAlive = false; // Node then says `Connection: close`, and closes after it
  } else {
    (last as ServerResponse & { _last: boolean })._last = true; // Node closes after it (resOnFinish)
  }
}
