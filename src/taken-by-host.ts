import type { IncomingMessage } from 'node:http';
import type { Coding } from './encoding.ts';

/**
 * Why the body cannot be read whole here, if its host took it first: read to its end, or in part (a
 * request log's own 'data' listener, and an await before the handler), without setting `req.body`; or
 * its encoding set (`req.setEncoding`) to one that does not give its bytes back. No event is left to
 * take: a bug of the host's, a 500, which Segment retries, and the cause in the log. A body decoded as
 * UTF-8 text is read back as UTF-8, as it was sent when it was valid (a sequence that was not is already
 * the replacement character); compressed, it was not text, and is lost.
 */
export function takenByTheHost(req: IncomingMessage, coding: Coding | undefined): string | undefined {
  if (req.readableEnded) return 'the request body was read before the endpoint got it (by a middleware?)';
  if (req.readableDidRead) {
    return 'some of the request body was read before the endpoint got it (by a middleware?)';
  }
  const encoding = req.readableEncoding;
  if (encoding === null || KEPT_ENCODINGS.has(encoding) || (encoding === 'utf8' && coding === undefined)) {
    return undefined;
  }
  return `the request's encoding was set to ${encoding} before the endpoint got it: its bytes are lost`;
}

/** The encodings whose text gives every byte back (`Buffer.from(text, encoding)`). */
const KEPT_ENCODINGS = new Set(['latin1', 'hex', 'base64', 'base64url']);

/**
 * A request its host listens to for 'readable' is held paused, resume() or not: it is read out on that
 * event, until `reading` is done if given, and once on the next tick for what came before (Node says
 * 'readable' to a first listener only). What read() takes goes to the 'data' listeners.
 */
export function readOnReadable(req: IncomingMessage, reading?: { readonly done: boolean }): void {
  if (req.listenerCount('readable') === 0) return;
  const readOut = () => {
    while (reading?.done !== true && req.read() !== null);
  };
  req.on('readable', readOut);
  process.nextTick(readOut);
}
