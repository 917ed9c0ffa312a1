// One connection pool's requests for `load` (run.ts): a POST of an event a call over node's HTTP client,
// and what became of it.
import {
  type Agent,
  type ClientRequest,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { segmentHeaders, settingsHeader } from '../tester/headers.ts';
import { SEGMENT_TIMEOUT_MS } from './report.ts';
import type { LoadOptions } from './run.ts';

/** What became of one request. */
export type Outcome = { readonly status: number } | { readonly error: string } | { readonly timedOut: true };

/**
 * One POST of `body` a call, answered within Segment's timeout or given up (its connection then
 * closed, as Segment does), over at most `connections` kept-alive connections. `close()` lets them go.
 */
export function sender(options: LoadOptions): ((body: Buffer) => Promise<Outcome>) & { close(): void } {
  const url = new URL(options.url);
  const secure = url.protocol === 'https:';
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const agentOptions = {
    keepAlive: true,
    maxSockets: options.connections,
    maxFreeSockets: options.connections,
  };
  const agent: Agent = secure
    ? new HttpsAgent({ ...agentOptions, rejectUnauthorized: options.insecure !== true })
    : new HttpAgent(agentOptions);
  const request = secure ? httpsRequest : httpRequest;
  const headers = {
    ...segmentHeaders(options.apiKey, settingsHeader(options.settings)),
    host: url.host,
  };
  const target = {
    hostname,
    port: url.port || (secure ? 443 : 80),
    path: `${url.pathname}${url.search}`,
    method: 'POST',
    agent,
    // SNI takes a name, never an address.
    ...(secure && isIP(hostname) === 0 && { servername: hostname }),
  };
  const send = (body: Buffer): Promise<Outcome> =>
    new Promise<Outcome>((resolve) => {
      let settled = false;
      const settle = (outcome: Outcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(outcome);
      };
      const req: ClientRequest = request({
        ...target,
        headers: { ...headers, 'content-length': body.length },
      });
      const timer = setTimeout(() => {
        settle({ timedOut: true });
        req.destroy();
      }, SEGMENT_TIMEOUT_MS);
      req.on('response', (res: IncomingMessage) => {
        // Read to its end and dropped: an answer is whole once its body is, and never held in memory.
        res.on('data', () => {});
        res.on('end', () => settle({ status: res.statusCode ?? 0 }));
        res.on('aborted', () => settle({ error: 'ECONNRESET' }));
        res.on('error', (err: NodeJS.ErrnoException) => settle({ error: err.code ?? err.message }));
      });
      // A 101 comes to this listener, not as a response: an answer all the same (not a 2xx).
      req.on('upgrade', (res: IncomingMessage, socket) => {
        socket.destroy();
        settle({ status: res.statusCode ?? 101 });
      });
      // A reset is a failure even on a kept-alive connection the server may have closed as the request
      // went out: Segment does not resend at once either, and the endpoint may have taken the event.
      req.on('error', (err: NodeJS.ErrnoException) => settle({ error: err.code ?? err.message }));
      req.end(body);
    });
  return Object.assign(send, { close: () => agent.destroy() });
}
