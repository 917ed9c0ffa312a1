import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createHandler, type EndpointHandler } from './handler.ts';
import { type HandlerOptions, integer } from './options.ts';

/** Options of `createServer`: the pipeline's, plus the socket's. */
export interface ServerOptions extends HandlerOptions {
  /** PEM certificate chain and private key. Required unless `http` is set. */
  tls?: { readonly cert: string | Buffer; readonly key: string | Buffer };
  /** Serve plain HTTP: only behind a proxy that terminates TLS. @default false */
  http?: boolean;
  /** @default '0.0.0.0' */
  host?: string;
  /** 0 picks a free port. @default 8443 */
  port?: number;
  /** How long an idle keep-alive connection is kept. @default 65000 (65 s) */
  keepAliveTimeoutMs?: number;
  /** The request headers must arrive within this. @default 10000 (10 s) */
  headersTimeoutMs?: number;
  /** The whole request must arrive within this. @default 30000 (30 s) */
  requestTimeoutMs?: number;
  /** On close, requests still running after this are cut off. @default 10000 (10 s) */
  shutdownTimeoutMs?: number;
}

export const SERVER_DEFAULTS = {
  host: '0.0.0.0',
  port: 8443,
  // Above the idle timeouts of the load balancers put in front (AWS ALB: 60 s), so that the balancer,
  // not us, closes an idle connection: otherwise a request can race our close and fail.
  keepAliveTimeoutMs: 65_000, // 65 s
  headersTimeoutMs: 10_000, // 10 s: Segment sends its headers at once; slow ones are an attack
  requestTimeoutMs: 30_000, // 30 s: above the body (10 s) and handler (4 s) timeouts together
  handshakeTimeoutMs: 10_000, // 10 s
  shutdownTimeoutMs: 10_000, // 10 s
} as const;

export interface EndpointServer {
  readonly server: Server;
  readonly handler: EndpointHandler;
  /** Starts listening; resolves with the URL events are taken at. */
  listen(): Promise<string>;
  /**
   * Graceful close: new events get 503, idle connections close, running requests finish (up to
   * `shutdownTimeoutMs`), then the server stops.
   */
  close(): Promise<void>;
}

/** The endpoint as a node:https server (node:http with `http: true`), timeouts set deliberately. */
export function createServer(options: ServerOptions): EndpointServer {
  const handler = createHandler(options);
  const port = integer('port', options.port, SERVER_DEFAULTS.port, 0, 65535);
  const host = options.host ?? SERVER_DEFAULTS.host;
  const keepAliveTimeout = integer(
    'keepAliveTimeoutMs',
    options.keepAliveTimeoutMs,
    SERVER_DEFAULTS.keepAliveTimeoutMs,
    1,
    2 ** 31 - 1,
  );
  const headersTimeout = integer(
    'headersTimeoutMs',
    options.headersTimeoutMs,
    SERVER_DEFAULTS.headersTimeoutMs,
    1,
    2 ** 31 - 1,
  );
  const requestTimeout = integer(
    'requestTimeoutMs',
    options.requestTimeoutMs,
    SERVER_DEFAULTS.requestTimeoutMs,
    1,
    2 ** 31 - 1,
  );
  const shutdownTimeout = integer(
    'shutdownTimeoutMs',
    options.shutdownTimeoutMs,
    SERVER_DEFAULTS.shutdownTimeoutMs,
    0,
    2 ** 31 - 1,
  );
  if (headersTimeout > requestTimeout) {
    throw new RangeError(
      `options.headersTimeoutMs (${headersTimeout}) must not exceed options.requestTimeoutMs (${requestTimeout})`,
    );
  }
  const common = {
    keepAliveTimeout,
    headersTimeout,
    requestTimeout,
    maxHeaderSize: 16 * 1024, // 16 KiB
    // How often header and request timeouts are checked (Node's default, 30 s, lets a slow client
    // hold a connection for up to 30 s past its deadline).
    connectionsCheckingInterval: 1_000, // 1 s
  };
  let server: Server;
  if (options.http === true) {
    server = createHttpServer(common, handler);
  } else {
    if (options.tls?.cert === undefined || options.tls.key === undefined) {
      throw new TypeError('options.tls ({ cert, key }) is required, or set options.http for plain HTTP');
    }
    const tls = {
      cert: options.tls.cert,
      key: options.tls.key,
      handshakeTimeout: SERVER_DEFAULTS.handshakeTimeoutMs,
    };
    server = createHttpsServer({ ...common, ...tls }, handler) as unknown as Server;
  }
  const scheme = options.http === true ? 'http' : 'https';

  const listen = () =>
    new Promise<string>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        const address = server.address() as AddressInfo;
        const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
        resolve(`${scheme}://${shown}:${address.port}${handler.path}`);
      });
    });

  const close = async () => {
    handler.drain();
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const deadline = setTimeout(() => server.closeAllConnections(), shutdownTimeout);
    try {
      await handler.idle();
      server.closeIdleConnections();
      await stopped;
    } finally {
      clearTimeout(deadline);
    }
  };

  return { server, handler, listen, close };
}
