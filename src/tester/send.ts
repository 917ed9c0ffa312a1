// One case of `segment-endpoint test` on the wire: the POST, its answer's status and message, or why
// there was none. Each case is settled once and sent once, but for a kept-alive connection the server
// closed before any answer, which node's docs advise sending again.

import { type Agent as HttpAgent, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { messageOf, truncate } from './shown.ts';

const ANSWER_KEPT = 64 * 1024; // bytes of an answer read for its message

/** What an endpoint answered: its status, the `message` of a JSON body, the body's declared type. */
export interface Answer {
  readonly status: number;
  readonly message?: string;
  /** The start of a refusal's body that holds no JSON `message` (an HTML page, plain text), if any. */
  readonly bodyStart?: string;
  /** Its `Allow` header: the methods the URL takes, said with a 405. */
  readonly allow?: string;
  readonly contentType?: string;
  /** Whether the request went out on a new connection, not one kept alive from the case before. */
  readonly fresh: boolean;
}

/**
 * Sends `body` to `url` on `agent` (a POST; or a GET, `method`): the status answered and its message, or
 * a rejection saying why not.
 */
export function send(
  url: URL,
  headers: Record<string, string>,
  body: Buffer,
  agent: HttpAgent,
  timeoutMs: number,
  method: 'POST' | 'GET' = 'POST',
  retried = false,
): Promise<Answer> {
  const request = (url.protocol === 'https:' ? httpsRequest : httpRequest) as typeof httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent });
    let settled = false;
    /** The answer's status, once its head is in. */
    let status: number | undefined;
    const settle = () => {
      const first = !settled;
      settled = true;
      clearTimeout(timer);
      return first;
    };
    // Whichever comes first settles the case; what the cut then makes happen (the request's error, the
    // answer's) is not a second failure, nor a reason to send the event again.
    const fail = (err: NodeJS.ErrnoException) => {
      if (!settle()) return;
      req.destroy();
      if (status !== undefined) {
        reject(new Error(`the answer was cut off after its status (${status}): ${err.message}`));
      } else if (!retried && req.reusedSocket && err.code === 'ECONNRESET') {
        // A kept-alive connection the server closed just as this request went out, before any answer:
        // sent once more on a new one, as node's docs advise (http `request.reusedSocket`).
        send(url, headers, body, agent, timeoutMs, method, true).then(resolve, reject);
      } else if (err.code?.startsWith('HPE_')) {
        reject(new Error(`the answer is not HTTP (${err.message})`)); // node's parser, e.g. HPE_INVALID_CONSTANT
      } else {
        reject(err);
      }
    };
    const timer = setTimeout(() => {
      const after =
        status === undefined ? '' : ` (its status, ${status}, came; the rest of the answer did not)`;
      status = undefined; // said here: not a cut
      fail(new Error(`timed out after ${timeoutMs / 1000} s${after}`));
    }, timeoutMs);
    req.on('error', fail);
    // A 101 comes to this listener, not as a response; with none, node drops the socket and the request
    // would settle neither way.
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      if (settle()) resolve({ status: res.statusCode ?? 101, fresh: !req.reusedSocket });
    });
    req.on('response', (res) => {
      status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on('data', (chunk: Buffer) => {
        if (kept < ANSWER_KEPT) chunks.push(chunk);
        kept += chunk.length;
      });
      res.on('error', fail);
      res.on('end', () => {
        if (!settle()) return;
        const text = Buffer.concat(chunks).toString('utf8');
        const message = messageOf(text);
        const bodyStart = message === undefined && (res.statusCode ?? 0) >= 300 ? text.trim() : '';
        const { 'content-type': contentType, allow } = res.headers;
        resolve({
          status: res.statusCode ?? 0,
          fresh: !req.reusedSocket,
          ...(message !== undefined && { message }),
          ...(bodyStart !== '' && { bodyStart: truncate(bodyStart) }),
          ...(allow !== undefined && { allow }),
          ...(contentType !== undefined && { contentType }),
        });
      });
    });
    req.end(body);
  });
}
