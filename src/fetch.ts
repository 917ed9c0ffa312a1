import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { describeValue, ERRORS } from './errors.ts';
import { RequestBody } from './fetch-body.ts';
import { type EndpointHandler, resolvedHandler } from './handler.ts';
import type { Logger } from './log.ts';
import { checkOptionNames, HANDLER_OPTION_NAMES } from './option-names.ts';
import { type HandlerOptions, loggerOf, resolveHandlerOptions } from './options.ts';
import { checkPath } from './paths.ts';
import { JSON_TYPE } from './respond.ts';
import type { CheckedSettings, Settings } from './settings.ts';
import { unreservedRead } from './target.ts';

// The endpoint as a web-standard handler, `(request: Request) => Promise<Response>`, for Hono, Next.js
// route handlers and any fetch-style server. One implementation of the contract: the same handler as
// createHandler's, reached through a thin edge that shows it a Request as the few parts of Node's
// request it reads (method, target, headers, the body as a stream) and takes its answer back as a
// Response. Who owns TLS, timeouts and connection limits is the host's business.

export interface FetchHandler {
  (request: Request): Promise<Response>;
  /** Stops taking events: new ones get 503, health answers draining. */
  drain(): void;
  /** Resolves once no event is being processed. */
  idle(): Promise<void>;
  /** Events being processed now. */
  readonly inFlight: number;
  /** Replaces the keys of `apiKeys`, as createHandler's `setApiKeys`. */
  setApiKeys: EndpointHandler['setApiKeys'];
  /** The same without holding the event loop, as createHandler's `loadApiKeys`. */
  loadApiKeys: EndpointHandler['loadApiKeys'];
  /** Replaces the secrets of `signatureSecret`, as createHandler's `setSignatureSecret`. */
  setSignatureSecret: EndpointHandler['setSignatureSecret'];
}

/**
 * A fetch-style handler over the same pipeline as `createHandler(options)`: the same checks, limits,
 * statuses and JSON bodies. A fetch Request carries no Host header (the URL says where it went): the
 * Host check belongs to the Node front door, so the URL's host stands in for it. `basePath` is where
 * the host mounted it (`/segment`): the handler routes on what follows.
 */
export function createFetchHandler<S = Settings>(
  options: HandlerOptions<S> & CheckedSettings<S>,
  mount?: { basePath?: string | undefined },
): FetchHandler {
  // createHandler's check, with where a basePath given among the options belongs.
  checkOptionNames(options, HANDLER_OPTION_NAMES, {
    basePath: 'give it as createFetchHandler(options, { basePath })',
  });
  const base = basePathOf(mount);
  const resolved = resolveHandlerOptions(options);
  const handler = resolvedHandler(resolved);
  // Matched as sent, the mount included (a proxy rule that hides them by their path keeps them hidden).
  const asSent = new Set([resolved.healthPath, resolved.livePath, resolved.metricsPath]);
  const log = loggerOf(options);
  const serve = (request: Request) => {
    if (request.bodyUsed || request.body?.locked === true) return bodyGone(log);
    const url = new URL(request.url);
    let under: string | undefined = url.pathname.slice(base.length);
    if (!below(url.pathname, base)) {
      under = spelledBelow(url.pathname, base);
      if (under !== undefined && asSent.has(under)) under = undefined;
    }
    // A catch-all host (Bun.serve, a worker) passes every request: what is not below basePath is not ours.
    if (under === undefined) return notFound(base, handler.path);
    return answer(handler, request, url, under, base);
  };
  return Object.defineProperties(serve as FetchHandler, {
    drain: { value: () => handler.drain(), enumerable: true },
    idle: { value: () => handler.idle(), enumerable: true },
    setApiKeys: { value: handler.setApiKeys, enumerable: true },
    loadApiKeys: { value: handler.loadApiKeys, enumerable: true },
    setSignatureSecret: { value: handler.setSignatureSecret, enumerable: true },
    inFlight: { get: () => handler.inFlight, enumerable: true },
  });
}

const MOUNT = 'createFetchHandler(options, { basePath }): ';

/** Where the host mounted the handler, checked as a path option is (a 404 for every event otherwise), less a trailing "/". */
function basePathOf(mount: unknown): string {
  if (mount === undefined) return '';
  if (typeof mount !== 'object' || mount === null) {
    throw new TypeError(`${MOUNT}the second argument must be an object, got ${describeValue(mount)}`);
  }
  checkOptionNames(mount, ['basePath'], {}, MOUNT);
  const { basePath } = mount as { basePath?: unknown };
  return basePath === undefined ? '' : checkPath('basePath', basePath, MOUNT).replace(/\/$/, '');
}

function answer(
  handler: EndpointHandler,
  request: Request,
  url: URL,
  under: string,
  base: string,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    if (request.signal?.aborted) {
      reject(request.signal.reason);
      return;
    }
    const req = incoming(request, url, under, base);
    const res = new FetchReply(resolve);
    // A request its sender gave up on: its body stops, and nobody is waiting for an answer.
    request.signal?.addEventListener('abort', () => {
      req.destroy();
      reject(request.signal.reason);
    });
    // A body that fails (its sender gone) is a request cut short: the pipeline answers nobody, as it does
    // a Node request aborted mid-body, and the host hears why.
    req.once('error', (err) => {
      setImmediate(() => {
        if (!res.headersSent) reject(err);
      });
    });
    handler(req, res as unknown as ServerResponse);
  });
}

/**
 * A Request whose body the host read (or locked) before the handler: there is no event left to take. A
 * bug in the host, answered as one: a 500, retried by Segment, and the reason in the log.
 */
function bodyGone(log: Logger): Promise<Response> {
  log.error({}, 'the Request body was read before the handler (by a middleware?): answered 500');
  return refusal(500, 'SEG_INTERNAL', ERRORS.SEG_INTERNAL.message);
}

/**
 * Whether `path` is `base` or below it, by whole segments (`/segmentation` is not below `/segment`);
 * every path is below no base at all.
 */
const below = (path: string, base: string) => base === '' || path === base || path.startsWith(`${base}/`);

/**
 * What follows `base` in `path`, as sent, when `path` is below it only with unreserved characters
 * percent-encoded read as themselves on both sides (`/%73egment`), as a host's router reads it.
 */
function spelledBelow(path: string, base: string): string | undefined {
  const baseSegments = unreservedRead(base).split('/');
  const segments = path.split('/');
  const mount = segments.slice(0, baseSegments.length).join('/');
  if (unreservedRead(mount) !== baseSegments.join('/')) return undefined;
  return path.slice(mount.length);
}

/** The front door's 404, for a request outside basePath: it names the event path where it is mounted. */
function notFound(base: string, path: string): Promise<Response> {
  return refusal(404, 'SEG_NOT_FOUND', `Not found: send events to ${path === '/' ? base : `${base}${path}`}`);
}

/** A refusal answered here, before the pipeline: JSON `{"message", "code"}` as the pipeline's. */
function refusal(status: number, code: string, message: string): Promise<Response> {
  const body = JSON.stringify({ message, code });
  return Promise.resolve(new Response(body, { status, headers: { 'content-type': JSON_TYPE } }));
}

/** The Request as the parts of an IncomingMessage the pipeline reads: a stream of its body, and more. */
function incoming(request: Request, url: URL, under: string, base: string): IncomingMessage {
  const headers: IncomingHttpHeaders = { host: url.host };
  const rawHeaders: string[] = ['host', url.host];
  request.headers.forEach((value, name) => {
    if (name === 'host') return;
    headers[name] = value;
    rawHeaders.push(name, value);
  });
  // A streamed body without a length is what chunked framing is to Node: read to its end.
  if (request.body !== null && headers['content-length'] === undefined) {
    headers['transfer-encoding'] = 'chunked';
    rawHeaders.push('transfer-encoding', 'chunked');
  }
  const target = `${under === '' ? '/' : under}${url.search}`;
  return new RequestBody(request, target, base, headers, rawHeaders) as unknown as IncomingMessage;
}

/** The parts of a ServerResponse the pipeline writes, turned into a Response once it ends. */
class FetchReply {
  headersSent = false;
  writableEnded = false;
  destroyed = false;
  #status = 200;
  #headers = new Headers();
  readonly #resolve: (response: Response) => void;

  constructor(resolve: (response: Response) => void) {
    this.#resolve = resolve;
  }

  writeHead(status: number, headers?: OutgoingHttpHeaders): this {
    this.#status = status;
    for (const [name, value] of Object.entries(headers ?? {})) {
      // The connection is the host's: hop-by-hop headers and the length are its to write.
      if (value === undefined || HOP_BY_HOP.has(name.toLowerCase())) continue;
      for (const one of Array.isArray(value) ? value : [value]) this.#headers.append(name, String(one));
    }
    this.headersSent = true;
    return this;
  }

  /** Expect: 100-continue is the host's business too. */
  writeContinue(): void {}
  /** A Response starts with no header a host set. */
  readonly hasHeader = (): boolean => false;

  end(body?: string | Buffer): this {
    if (!this.headersSent) this.writeHead(this.#status);
    this.writableEnded = true;
    const empty = body === undefined || body.length === 0 || NO_BODY.has(this.#status);
    const bytes = empty ? null : typeof body === 'string' ? body : new Uint8Array(body);
    this.#resolve(new Response(bytes, { status: this.#status, headers: this.#headers }));
    return this;
  }

  on(): this {
    return this;
  }
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length']);
const NO_BODY = new Set([101, 204, 205, 304]);
