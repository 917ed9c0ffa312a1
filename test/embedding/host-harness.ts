// A partner's own node:http server around the handler, with a step of its own before the handler is
// called (a request log, a body parser, a response hook): what the host-state tests send requests to.
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHandler, type EndpointHandler, type HandlerOptions } from '../../src/index.ts';
import { jsonLogger } from '../../src/log.ts';
import { recorder, type Seen, segmentHeaders, trackEvent } from '../helpers.ts';

export interface Answer {
  readonly status: number;
  /** The reason phrase of its status line. */
  readonly phrase: string;
  readonly body: string;
  readonly headers: IncomingMessage['headers'];
}

export interface Host {
  readonly seen: Seen;
  readonly logs: string[];
  readonly port: number;
  /** Sends `parts` as one request's body (chunked when more than one, a pause between them). */
  send(parts: Buffer[], headers?: Record<string, string>, path?: string): Promise<Answer>;
}

/** What the harness's handler is made with besides its key, handlers and logger. */
export type HostedOptions = Partial<HandlerOptions> & {
  /** Makes a handler throw this for an event, as `recorder`'s `fail`. */
  readonly fail?: (event: Record<string, unknown>) => Error | undefined;
};

/** A node:http server whose `host` step runs before it calls the handler, its parts' answers `use`d. */
export async function hosted(
  host: (req: IncomingMessage, res: ServerResponse, segment: EndpointHandler) => void,
  use: (h: Host) => Promise<void>,
  { fail, ...options }: HostedOptions = {},
): Promise<void> {
  const { seen, handlers } = recorder(fail);
  const logs: string[] = [];
  const segment = createHandler({
    apiKeys: ['test-key'],
    handlers,
    log: jsonLogger('info', (line) => logs.push(line)),
    ...options,
  });
  const server = createHttpServer((req, res) => host(req, res, segment));
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const { port } = server.address() as AddressInfo;
  const send = (parts: Buffer[], headers: Record<string, string> = {}, path = '/') =>
    new Promise<Answer>((answered, failed) => {
      const length = parts.length === 1 ? { 'content-length': String(parts[0]?.length) } : {};
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port,
          path,
          method: 'POST',
          headers: { ...segmentHeaders(), ...length, ...headers },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            answered({
              status: res.statusCode ?? 0,
              phrase: res.statusMessage ?? '',
              body: Buffer.concat(chunks).toString(),
              headers: res.headers,
            }),
          );
          res.on('error', failed);
        },
      );
      req.on('error', failed);
      (async () => {
        for (const [i, part] of parts.entries()) {
          if (i > 0) await sleep(30);
          req.write(part);
        }
        req.end();
      })().catch(failed);
    });
  try {
    await use({ seen, logs, port, send });
  } finally {
    server.closeAllConnections();
    await new Promise((closed) => server.close(closed));
  }
}

export const eventBytes = (extra: Record<string, unknown> = {}) =>
  Buffer.from(JSON.stringify(trackEvent(extra)));
export const codeOf = (answer: Answer) => (JSON.parse(answer.body) as { code: string }).code;
