// Clients of a real endpoint: HTTPS requests through a keep-alive agent that trusts the test
// certificate, and raw bytes over TLS for requests no well-behaved client would send.
import type { IncomingHttpHeaders } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { connect } from 'node:tls';
import { segmentHeaders } from './helpers.ts';

export interface HttpsResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The local port of the socket used: equal across requests means one kept-alive connection. */
  localPort: number | undefined;
}

/** A keep-alive agent that trusts the test certificate and holds one connection. */
export function keepAliveAgent(ca: Buffer): Agent {
  return new Agent({ keepAlive: true, maxSockets: 1, ca });
}

/** One HTTPS request through `agent`, verifying the certificate against `localhost`. */
export function httpsCall(
  agent: Agent,
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<HttpsResponse> {
  const body =
    options.body === undefined
      ? undefined
      : Buffer.from(typeof options.body === 'string' ? options.body : JSON.stringify(options.body));
  const headers = { ...(options.headers ?? segmentHeaders()) };
  if (body !== undefined) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { method: options.method ?? 'POST', headers, agent, servername: 'localhost' },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            localPort: req.socket?.localPort,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Writes raw bytes over TLS and collects what comes back until the server closes the connection: for
 * requests no well-behaved client would send (no length, a stalled body). A request the server should
 * answer on a connection it keeps says `Connection: close`. `guardMs` only bounds a server that never
 * closes: the promise rejects, showing what had arrived.
 */
export function rawTls(port: number, ca: Buffer, text: string | Buffer, guardMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () =>
      socket.write(text),
    );
    const chunks: Buffer[] = [];
    const received = () => Buffer.concat(chunks).toString();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open ${guardMs} ms; received:\n${received()}`));
    }, guardMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    // A reset after the server's answer still shows as the close.
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received());
    });
  });
}

/** Status code and JSON body of a raw HTTP/1.1 response. */
export function parseRaw(response: string): { status: number; headers: string; body: string } {
  const split = response.indexOf('\r\n\r\n');
  const head = response.slice(0, split);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  return { status, headers: head.toLowerCase(), body: response.slice(split + 4) };
}
