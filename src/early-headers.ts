import { ServerResponse } from 'node:http';
import { cutAnswer } from './http2.ts';
import type { Logger } from './log.ts';

// An embedding host that sent the response's headers before handing the request to the handler
// (`res.flushHeaders()` in a middleware): the status it sent cannot be taken back. One that only set
// some: those that would misdescribe the handler's answers are taken off.

/**
 * Whether this response's headers are out already: ours (answered before, by a handler's timeout), or
 * its host's (`res.flushHeaders()` before the handler got it, see hostAnswered), whose status cannot be
 * taken back. A refusal then cuts the connection: its sender hears no success, and retries.
 */
export function cutIfHostAnswered(res: ServerResponse): boolean {
  if (!res.headersSent) return false;
  if (!res.writableEnded) cutAnswer(res);
  return true;
}

const saidHostAnswered = new WeakSet<Logger>();

/**
 * A response whose host sent its headers before the handler got it: logged once for each logger. Its
 * event is taken all the same (the host's status may already have told the sender it was), and its
 * answer is the host's status, ended, for a success; the connection cut for anything else.
 */
export function hostAnswered(log: Logger): void {
  if (saidHostAnswered.has(log)) return;
  saidHostAnswered.add(log);
  log.error(
    {},
    "the response's headers were already sent when the endpoint got the request (by the host's middleware?): successes end the host's response, anything else cuts the connection",
  );
}

// What a host may have set on the response before the handler that would misdescribe the handler's answers:
// their body's coding and framing (a compression middleware's Content-Encoding on plain JSON, a
// Transfer-Encoding beside their length, a Trailer announced for a body that has a length: Node throws
// writing that), and what only some statuses carry, set by each answer itself.
// The host's others (a request id, CORS, security headers) stay.
const NOT_THE_HOSTS = [
  'content-encoding',
  'transfer-encoding',
  'trailer',
  'content-range',
  'retry-after',
  'www-authenticate',
  'allow',
];

/**
 * Takes off `res` what its host set that is not the host's to say in these answers: the headers above,
 * and a status phrase (Koa's `ctx.status = 418` sets one), which Node would write beside any status.
 * Over HTTP/2 there is none, and reading it there warns.
 */
export function ownAnswer(res: ServerResponse): void {
  for (const name of NOT_THE_HOSTS) if (res.hasHeader(name)) res.removeHeader(name);
  if (res instanceof ServerResponse && res.statusMessage) res.statusMessage = '';
}
