import type { IncomingMessage, ServerResponse } from 'node:http';
import { routes } from './batch.ts';
import { checkCharset } from './body.ts';
import { codingOf, isIdentity } from './encoding.ts';
import { EndpointError, quoted, toErrorAnswer } from './errors.ts';
import { createHandler, type EndpointHandler } from './handler.ts';
import { serializedBytes } from './json.ts';
import { silentLogger } from './log.ts';
import { optionsCopy } from './option-names.ts';
import { type HandlerOptions, resolveHandlerOptions } from './options.ts';
import { bodyTooLarge } from './refusals.ts';
import { type RefusalContext, sendError } from './respond.ts';
import type { Settings } from './settings.ts';
import { routeAt } from './target.ts';

// The endpoint as express middleware: `app.use('/segment', segmentEndpoint(options))`. Express strips
// the mount path from `req.url`, and the handler routes on what follows, as it would at a server's root.
// A body parser in front (express.json(), raw, text) is welcome: a body it read reaches the pipeline as
// `req.body` (framedBody: the same limits, depth and prototype checks), and a body it refused is answered
// with our JSON refusal, the standalone server's, rather than express's HTML error page.

/** A request as express hands it on: its path below the mount, and the body a parser may have read. */
export interface ExpressRequest extends IncomingMessage {
  readonly path: string;
  body?: unknown;
}

type Next = (err?: unknown) => void;

export type SegmentMiddleware = (req: ExpressRequest, res: ServerResponse, next: Next) => void;
export type SegmentErrorMiddleware = (
  err: unknown,
  req: ExpressRequest,
  res: ServerResponse,
  next: Next,
) => void;

/**
 * What `app.use` mounts: the middleware, then its error middleware (which answers the body parser's
 * refusals of requests it serves), with the handler's lifecycle: `drain()`, `idle()`, `inFlight`, ...
 */
export type ExpressEndpoint = [SegmentMiddleware, SegmentErrorMiddleware] &
  Pick<
    EndpointHandler,
    'drain' | 'idle' | 'draining' | 'inFlight' | 'path' | 'metrics' | 'setApiKeys' | 'loadApiKeys'
  >;

/** What body-parser (and raw-body) put on the errors they pass to `next`. */
interface BodyParserError {
  readonly type: string;
  readonly body?: unknown;
  readonly limit?: unknown;
  readonly charset?: unknown;
}

/**
 * The endpoint for `app.use(path, ...)`: the same pipeline as `createHandler(options)`. A bad option
 * throws here. Requests for paths it does not serve (its event path, `/v1/*`, health, live, metrics,
 * below the mount) go on to the next middleware, as do errors of requests it does not serve and errors
 * that are not a body parser's refusal of the sender's body.
 */
export default function segmentEndpoint<S = Settings>(options: HandlerOptions<S>): ExpressEndpoint {
  const given = optionsCopy(options); // read once: a getter read twice could differ between the two
  const handler = createHandler(given);
  // Checked by createHandler already; resolved again for the paths and the limit, without a second
  // duplicate store (the handler has its own) and without saying its warnings a second time.
  const opts = resolveHandlerOptions({ ...given, idempotency: false, log: silentLogger });
  const eventRoutes = routes(opts.path, opts.trackingApi);
  const others = new Set([opts.healthPath, opts.livePath, opts.metricsPath]);
  const ours = (path: string) => others.has(path) || routeAt(eventRoutes, path) !== undefined;
  // The standalone server's refusal of a charset: on the Tracking API's paths, UTF-16 and UTF-32 only.
  const charsetOf = (req: ExpressRequest) =>
    checkCharset(req.headers['content-type'], (routeAt(eventRoutes, req.path)?.kind ?? 'event') !== 'event');
  const { maxBodyBytes } = opts;
  // As the handler's own: no refusal made here is a 401, but the context is whole.
  const context: RefusalContext = { challenge: `Basic realm="${opts.realm}", charset="UTF-8"`, maxBodyBytes };

  const serve: SegmentMiddleware = (req, res, next) => {
    if (!ours(req.path)) return next();
    let refused: EndpointError | undefined;
    if (!adoptParsed(req, maxBodyBytes)) refused = bodyTooLarge(maxBodyBytes);
    // Decoded by the parser from a coding or charset the standalone server does not take: refused alike.
    else if (req.body !== undefined) {
      refused = caught(() => {
        codingOf(req.headers['content-encoding']);
        charsetOf(req);
      });
    }
    if (refused !== undefined) {
      const answer = toErrorAnswer(refused);
      handler.metrics?.request('unknown', answer.status, 0);
      sendError(req, res, answer, context);
      return;
    }
    handler(req, res);
  };

  const refuse: SegmentErrorMiddleware = (err, req, res, next) => {
    const type = bodyErrorType(err) ?? (undecoded(err, req) ? UNDECODED : undefined);
    const refused = type === undefined ? undefined : BODY_REFUSALS.get(type);
    if (refused === undefined || !ours(req.path) || res.headersSent) return next(err);
    if ((type === 'encoding.unsupported' || type === 'charset.unsupported') && !req.readableDidRead) {
      // A coding the parser does not decode (x-gzip), or a charset it does not (us-ascii; any, on the
      // Tracking API's paths), refused before it read a byte: read here, as the standalone server reads
      // it (and refuses what it does not take, in its words).
      req.body = undefined;
      handler(req, res);
      return;
    }
    const { body } = err as BodyParserError;
    // A text in a charset we do not read is refused for it, as the standalone server refuses it.
    const charset = type === 'request.aborted' ? undefined : caught(() => charsetOf(req));
    if (charset === undefined && type === 'entity.parse.failed' && typeof body === 'string') {
      // The text it could not parse goes through the pipeline as if read here: after authentication, our
      // parser and its refusal. `123`, which strict body-parser refuses, is JSON to us: not an object.
      req.body = body;
      handler(req, res);
      return;
    }
    const answer = toErrorAnswer(charset ?? refused(err as BodyParserError, req, maxBodyBytes));
    handler.metrics?.request('unknown', answer.status, 0);
    // A sender that went away mid-body is not answered, as in the pipeline: nobody is there to read it.
    if (type !== 'request.aborted') sendError(req, res, answer, context);
  };

  return Object.defineProperties([serve, refuse], {
    drain: { value: () => handler.drain() },
    idle: { value: () => handler.idle() },
    setApiKeys: { value: handler.setApiKeys },
    loadApiKeys: { value: handler.loadApiKeys },
    draining: { get: () => handler.draining },
    inFlight: { get: () => handler.inFlight },
    path: { value: handler.path },
    metrics: { value: handler.metrics },
  }) as ExpressEndpoint;
}

/**
 * A body a parser in front has parsed, as the pipeline must see it. Body-parser reads an empty body as
 * `{}`: it goes on as the empty text it was (not JSON, a 400). Its limit (100 KiB unless configured) may
 * be above ours: a parsed body whose declared length is over `maxBodyBytes` goes on unread, so that the
 * pipeline's header check refuses it (413) where the standalone server does, after authentication.
 * Chunked or compressed, the declared length says nothing of it: what it holds is measured instead.
 */
function adoptParsed(req: ExpressRequest, maxBodyBytes: number): boolean {
  const { body } = req;
  if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) return true;
  const length = req.headers['content-length'];
  const coding = req.headers['content-encoding'];
  const coded = coding !== undefined && !isIdentity(coding);
  if (length === undefined || req.headers['transfer-encoding'] !== undefined || coded) {
    // Streamed, its length unknown, or decompressed (its declared length the compressed one): what it
    // holds, serialised again, is held to our limit (false: over).
    return measured(body, maxBodyBytes) <= maxBodyBytes;
  }
  if (length === '0') req.body = '';
  else if (Number(length) > maxBodyBytes) req.body = undefined;
  return true;
}

/**
 * The UTF-8 bytes of a parsed body serialised again (more than `max` once past it). JSON.stringify is
 * recursive: a body nested thousands deep, a few KiB sent, overflows the stack there (a RangeError, which
 * express would answer with its own HTML 500, retried by Segment), so such a body is counted without it,
 * and goes on to the pipeline, which refuses its depth (400) as the standalone server does.
 */
function measured(body: unknown, max: number): number {
  try {
    return Buffer.byteLength(JSON.stringify(body) ?? '');
  } catch {
    return serializedBytes(body, max);
  }
}

/**
 * A body that did not decode as its Content-Encoding says: body-parser passes the decompression stream's
 * error on as a 400 without a `type` (zlib's, with its `code` and `errno`). `UNDECODED` is our name for
 * it among body-parser's types.
 */
const UNDECODED = 'segment-endpoint.undecoded';
function undecoded(err: unknown, req: IncomingMessage): boolean {
  if (typeof err !== 'object' || err === null || req.headers['content-encoding'] === undefined) return false;
  const { status, code, errno } = err as { status?: unknown; code?: unknown; errno?: unknown };
  return status === 400 && typeof code === 'string' && typeof errno === 'number';
}

/** The refusal `check` throws, if it throws one. */
function caught(check: () => void): EndpointError | undefined {
  try {
    check();
    return undefined;
  } catch (err) {
    if (err instanceof EndpointError) return err;
    throw err;
  }
}

function bodyErrorType(err: unknown): string | undefined {
  const type = typeof err === 'object' && err !== null ? (err as { type?: unknown }).type : undefined;
  return typeof type === 'string' ? type : undefined;
}

type BodyRefusal = (err: BodyParserError, req: IncomingMessage, maxBodyBytes: number) => EndpointError;

/**
 * Body-parser's refusals of a sender's body (by the `type` of its error), as our catalogue's. Its other
 * errors are the app's (its `verify` function's 403, a stream another middleware read: 500) and go on.
 */
const BODY_REFUSALS: ReadonlyMap<string, BodyRefusal> = new Map<string, BodyRefusal>([
  ['entity.parse.failed', () => new EndpointError('SEG_INVALID_JSON')],
  [
    'entity.too.large',
    // The smaller limit is the one the body broke: the parser's, or ours when its is larger.
    (err, _req, max) => bodyTooLarge(typeof err.limit === 'number' ? Math.min(err.limit, max) : max),
  ],
  ['encoding.unsupported', (_err, req) => unsupportedEncoding(req.headers['content-encoding'])],
  [
    UNDECODED,
    (_err, req) => {
      const header = req.headers['content-encoding'];
      return (
        caught(() => codingOf(header)) ??
        new EndpointError('SEG_BAD_ENCODING', `Request body is not valid ${codingOf(header)} data`)
      );
    },
  ],
  [
    'charset.unsupported',
    (err) =>
      new EndpointError(
        'SEG_UNSUPPORTED_MEDIA_TYPE',
        `Content-Type charset ${quoted(String(err.charset))} is not supported: send UTF-8 JSON`,
      ),
  ],
  // express.urlencoded()'s: too many fields of a form, which is no body we take either.
  ['parameters.too.many', (_err, _req, max) => bodyTooLarge(max)],
  ['request.aborted', () => new EndpointError('SEG_BODY_ABORTED')],
  ['request.size.invalid', () => new EndpointError('SEG_BODY_ABORTED')],
]);

/** The standalone server's refusal of a coding it does not read; else the parser's (`inflate: false`). */
function unsupportedEncoding(header: string | undefined): EndpointError {
  return (
    caught(() => codingOf(header)) ??
    new EndpointError(
      'SEG_UNSUPPORTED_ENCODING',
      `Content-Encoding ${quoted(header ?? '')} is not accepted here: send the body uncompressed`,
    )
  );
}
