import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { clientErrors, refuseTunnel } from './client-errors.ts';
import { behindClosingAnswer } from './connection-end.ts';
import { ConnectionSlots } from './connections.ts';
import { MAX_HEADERS } from './framing.ts';
import { type EndpointHandler, resolvedHandler } from './handler.ts';
import { checkOptionNames, HANDLER_OPTION_NAMES } from './option-names.ts';
import { integer, OPTIONS } from './option-table.ts';
import { type HandlerOptions, resolveHandlerOptions } from './options.ts';
import type { CheckedSettings, Settings } from './settings.ts';
import { gracefulClose } from './shutdown.ts';
import { checkServerTls, serverTls, type TlsPair } from './tls-context.ts';

/** Options of `createServer`: the pipeline's, plus the socket's. */
export interface ServerOptions<S = Settings> extends HandlerOptions<S> {
  /** `{ cert, key }`: the PEM certificate chain and private key. Required unless `http` is set. */
  tls?: { readonly cert: string | Buffer; readonly key: string | Buffer } | undefined;
  /** Serve plain HTTP: only behind a proxy that terminates TLS. @default false */
  http?: boolean | undefined;
  /** The address to listen on. @default '0.0.0.0' */
  host?: string | undefined;
  /** The port to listen on; 0 picks a free one. @default 8443 */
  port?: number | undefined;
  /**
   * How long an idle keep-alive connection is kept: above the idle timeout of common load balancers
   * (60 s), so that they close first. @default 65000 (65 s)
   */
  keepAliveTimeoutMs?: number | undefined;
  /**
   * The request headers must arrive within this, and a TLS handshake end within as long (a connection's
   * first request within twice this); at most `requestTimeoutMs`. @default 10000 (10 s)
   */
  headersTimeoutMs?: number | undefined;
  /**
   * The whole request must arrive within this; a connection whose answers flush nothing for as long (its
   * client does not read them) is closed. @default 30000 (30 s)
   */
  requestTimeoutMs?: number | undefined;
  /** On close, requests still running after this are cut off. @default 10000 (10 s) */
  shutdownTimeoutMs?: number | undefined;
  /**
   * Open connections at most. At the cap a newcomer takes the slot of the longest idle one (no request in
   * progress), closed at once, or after a request gracefully: its client reads the 200s it had not, then
   * the close, within 5 s (this many at once). When every one is busy, the newcomer is closed. @default 2048
   */
  maxConnections?: number | undefined;
  /**
   * The request line and headers, at most (431 past it), as Node counts them: each header's `: ` and
   * line end left out (4 bytes a header, ~400 at 100 headers). @default 16384 (16 KiB)
   */
  maxHeaderBytes?: number | undefined;
}

/** Every option of `createServer`: the handler's and the socket's. */
const SERVER_OPTION_NAMES: readonly string[] = [
  ...HANDLER_OPTION_NAMES,
  ...Object.keys({
    tls: true,
    http: true,
    host: true,
    port: true,
    keepAliveTimeoutMs: true,
    headersTimeoutMs: true,
    requestTimeoutMs: true,
    shutdownTimeoutMs: true,
    maxConnections: true,
    maxHeaderBytes: true,
  } satisfies Record<Exclude<keyof ServerOptions, keyof HandlerOptions>, true>),
];

const ALPN = ['http/1.1', 'http/1.0']; // else a client offering http/1.0 alone: no_application_protocol

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
  /**
   * Replaces the certificate and key for new connections; connections already open keep theirs, so
   * none is dropped (certificates are renewed under a running process). Throws, keeping the old pair,
   * when the new one is unusable (unreadable PEM, a key that does not match).
   */
  reloadTls(tls: { readonly cert: string | Buffer; readonly key: string | Buffer }): void;
  /**
   * Encrypts and decrypts TLS session tickets with `keys` (48 bytes), kept across `reloadTls`: processes
   * given the same keys resume each other's sessions (the workers of `--workers`).
   */
  setTicketKeys(keys: Buffer): void;
}

/** The endpoint as a node:https server (node:http with `http: true`), timeouts set deliberately. */
export function createServer<S = Settings>(options: ServerOptions<S> & CheckedSettings<S>): EndpointServer {
  checkOptionNames(options, SERVER_OPTION_NAMES);
  const resolved = resolveHandlerOptions(options);
  const handler = resolvedHandler(resolved);
  const { port, host, maxConnections, shutdownTimeoutMs, common } = socketSettings(options);
  // A client that never reads its answers holds its connection as one that never finishes its request
  // does: requestTimeoutMs bounds both. A first request's headers within its handshake's time and theirs.
  const slots = new ConnectionSlots(maxConnections, common.requestTimeout, 2 * common.headersTimeout);
  const serve = (req: IncomingMessage, res: ServerResponse) => {
    // One read behind an answer that ends its connection is never answered (handler.ts): not an answer
    // in progress, which would keep its lingering connection from being closed to admit a newcomer.
    if (!behindClosingAnswer(req)) slots.started(req, res);
    handler(req, res);
  };
  const server = nodeServer(options, common, serve);
  // At most maxConnections sockets (and as many closing, 5 s at most), however many clients connect: memory
  // stays bounded. For https, TCP connections before their handshake (the TLS server wraps them later).
  server.on('connection', (socket: Socket) => slots.admit(socket));
  server.on('clientError', clientErrors(slots, resolved.accessLog ? resolved.log : undefined));
  server.on('connect', (_req, socket) => refuseTunnel(socket, slots));
  // Without this listener Node answers `Expect: 100-continue` with 100 before any check: a sender with a
  // bad key, or a body over the limit, would be invited to upload it. The pipeline sends 100 itself once
  // the headers pass (sendContinue); a refusal goes out without it, and Node then closes the connection.
  server.on('checkContinue', serve);
  // Node answers an Expect other than 100-continue with an empty 417 unless this is listened for; the
  // handler's front door refuses it in JSON, as every other refusal.
  server.on('checkExpectation', serve);
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

  const close = () => gracefulClose(server, handler, slots, shutdownTimeoutMs);

  const tlsServer = (method: string): HttpsServer => {
    if (options.http === true) throw new TypeError(`${method}: this server is plain HTTP`);
    return server as unknown as HttpsServer;
  };
  let ticketKeys: Buffer | undefined;
  const reloadTls: EndpointServer['reloadTls'] = (tls) => {
    const https = tlsServer('reloadTls');
    // A new secure context brings new ticket keys: the ones in use go back, and sessions still resume.
    const keys = ticketKeys ?? https.getTicketKeys();
    https.setSecureContext(serverTls(tls));
    https.setTicketKeys(keys);
  };
  const setTicketKeys = (keys: Buffer) => {
    tlsServer('setTicketKeys').setTicketKeys(keys);
    ticketKeys = keys;
  };

  return { server, handler, listen, close, reloadTls, setTicketKeys };
}

/**
 * Throws what `createServer(options)` would throw of them, building nothing: the standalone process
 * checks its options before it opens what its handlers write to (the store's directory, a database).
 */
export function checkServerOptions<S>(options: ServerOptions<S>): void {
  checkOptionNames(options, SERVER_OPTION_NAMES);
  resolveHandlerOptions(options);
  socketSettings(options);
  if (options.http !== true) checkServerTls(tlsOf(options));
}

/** The options apart from those typed by the settings' schema. */
type SocketOptions = Omit<ServerOptions, 'handlers' | 'settingsSchema'>;

/** The socket's options, checked. */
function socketSettings(options: SocketOptions) {
  const headersTimeoutMs = integer('headersTimeoutMs', options.headersTimeoutMs);
  const requestTimeoutMs = integer('requestTimeoutMs', options.requestTimeoutMs);
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new RangeError(
      `options.headersTimeoutMs (${headersTimeoutMs}) must not exceed options.requestTimeoutMs (${requestTimeoutMs})`,
    );
  }
  const common = {
    keepAliveTimeout: integer('keepAliveTimeoutMs', options.keepAliveTimeoutMs),
    headersTimeout: headersTimeoutMs,
    requestTimeout: requestTimeoutMs,
    maxHeaderSize: integer('maxHeaderBytes', options.maxHeaderBytes),
    // Node would refuse a missing Host with an empty 400; the handler refuses it in JSON instead.
    requireHostHeader: false,
    // How often header and request timeouts are checked (Node's default, 30 s, lets a slow client
    // hold a connection for up to 30 s past its deadline).
    connectionsCheckingInterval: 1_000, // 1 s
  };
  return {
    port: integer('port', options.port),
    host: options.host ?? OPTIONS.host.default,
    maxConnections: integer('maxConnections', options.maxConnections),
    shutdownTimeoutMs: integer('shutdownTimeoutMs', options.shutdownTimeoutMs),
    common,
  };
}

/** The certificate and key, which HTTPS requires. */
function tlsOf(options: SocketOptions): TlsPair {
  if (options.tls?.cert === undefined || options.tls.key === undefined) {
    throw new TypeError('options.tls ({ cert, key }) is required, or set options.http for plain HTTP');
  }
  return options.tls;
}

/** The node:https (or node:http) server, its timeouts and header limits set from the options. */
function nodeServer(
  options: SocketOptions,
  common: ReturnType<typeof socketSettings>['common'],
  serve: (req: IncomingMessage, res: ServerResponse) => void,
): Server {
  let server: Server;
  if (options.http === true) {
    server = createHttpServer(common, serve);
  } else {
    // A TLS handshake gets as long as the request headers that follow it (Node's default: 120 s).
    const tls = {
      ...serverTls(tlsOf(options)),
      handshakeTimeout: common.headersTimeout,
      ALPNProtocols: ALPN,
    };
    server = createHttpsServer({ ...common, ...tls }, serve) as unknown as Server;
  }
  // Headers past the count are dropped by Node's parser (their bytes are already bounded by
  // maxHeaderSize). One past the handler's limit, so that it sees a request that has too many.
  server.maxHeadersCount = MAX_HEADERS + 1;
  // A sender may end its side once its request is sent (HTTP/1.1 allows it). Node's default drops the
  // requests in progress on that connection and their answers not yet written (an asynchronous handler's,
  // the store's, AnswerBatch's): instead it ends after its last answer (lib/_http_server.js, socketOnEnd).
  // A TLS socket would end its own side in the next tick all the same: once its handshake is done, it
  // stays half open too (during the handshake a sender that ends its side is gone, and so is the socket).
  (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  if (options.http !== true) {
    server.on('secureConnection', (socket: Socket) => {
      socket.allowHalfOpen = true;
    });
  }
  return server;
}
