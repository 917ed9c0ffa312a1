import type { IncomingMessage } from 'node:http';
import { repeats } from './auth.ts';
import type { ErrorAnswer } from './error-answer.ts';
import { isHttp2 } from './http2.ts';
import { refusal } from './refusals.ts';

// What makes a request unservable before its path is looked at: its HTTP version, its count of headers,
// a repeated Host, an expectation this endpoint cannot meet. Decided here, answered by the front door
// (handler.ts).

/** Headers a request may carry (Segment sends 7). The standalone server hands the handler one more. */
export const MAX_HEADERS = 100;

/** A refusal of the request's framing, and whether its connection is closed after it. */
export interface FramingRefusal {
  readonly reply: ErrorAnswer;
  readonly close: boolean;
}

/** Why `req` cannot be served as it came, if it cannot. */
export function framingRefusal(req: IncomingMessage): FramingRefusal | undefined {
  // Of the versions that are not 1.x, llhttp passes HTTP/2.0 on (others, such as HTTP/3.0, reach the
  // server's clientError), and reads a request line without a version as HTTP/0.9: a garbled line.
  // A request of an HTTP/2 host (http2.ts) is served.
  if (req.httpVersionMajor >= 2 && !isHttp2(req)) return { reply: refusal('SEG_HTTP_VERSION'), close: true };
  if (req.httpVersionMajor === 0) return { reply: refusal('SEG_BAD_REQUEST', NO_VERSION), close: true };
  if (req.rawHeaders.length > 2 * MAX_HEADERS && headerCount(req.rawHeaders) > MAX_HEADERS) {
    // Refused whole rather than judged on the first 100: one dropped could be the Content-Length Node
    // framed the body by, or the Authorization.
    return { reply: refusal('SEG_HEADERS_TOO_LARGE', `More than ${MAX_HEADERS} headers`), close: true };
  }
  if (repeats(req.rawHeaders, 'host')) {
    // Node keeps the first; which host was meant is ambiguous (RFC 9112 §3.2: a 400).
    return { reply: refusal('SEG_BAD_REQUEST', 'More than one Host header'), close: false };
  }
  if (req.headers.expect !== undefined && !CONTINUE_RE.test(req.headers.expect)) {
    // An expectation this endpoint cannot meet (RFC 9110 §10.1.1); the server hands these over
    // ('checkExpectation') instead of answering an empty 417 itself.
    return { reply: refusal('SEG_EXPECTATION_FAILED'), close: true };
  }
  return undefined;
}

// How Node reads `Expect: 100-continue` (lib/_http_server.js).
const CONTINUE_RE = /(?:^|\W)100-continue(?:$|\W)/i;
const NO_VERSION = 'The request line has no HTTP/1.1 version';

/** Headers in `raw` (name, value, ...), HTTP/2's pseudo-headers (`:method`, `:path`, ...) aside. */
function headerCount(raw: readonly string[]): number {
  let count = 0;
  for (let i = 0; i < raw.length; i += 2) if (!raw[i]?.startsWith(':')) count++;
  return count;
}
