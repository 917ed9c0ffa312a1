import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkCharset } from './body.ts';
import { codingOf } from './encoding.ts';
import { type ErrorAnswer, toErrorAnswer } from './error-answer.ts';
import type { EndpointError } from './errors.ts';
import {
  adoptParsed,
  BODY_REFUSALS,
  type BodyParserError,
  bodyErrorType,
  caught,
  UNDECODED,
  undecoded,
} from './express-body.ts';
import { createHandler, type EndpointHandler } from './handler.ts';
import { type Logger, silentLogger } from './log.ts';
import { checkLogger } from './option-checks.ts';
import { optionsCopy } from './option-names.ts';
import { type HandlerOptions, loggerOf, resolveHandlerOptions } from './options.ts';
import { bodyTooLarge } from './refusals.ts';
import { type RefusalContext, sendError } from './respond.ts';
import { routes } from './routes.ts';
import type { CheckedSettings, Settings } from './settings.ts';
import { loggedPath, routeAt } from './target.ts';

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
    | 'drain'
    | 'idle'
    | 'draining'
    | 'inFlight'
    | 'path'
    | 'metrics'
    | 'setApiKeys'
    | 'loadApiKeys'
    | 'setSignatureSecret'
  >;

/**
 * The endpoint for `app.use(path, ...)`: the same pipeline as `createHandler(options)`. A bad option
 * throws here. Requests for paths it does not serve (its event path, `/v1/*`, health, live, metrics,
 * below the mount) go on to the next middleware, as do errors of requests it does not serve and errors
 * that are not a body parser's refusal of the sender's body.
 */
export default function segmentEndpoint<S = Settings>(
  options: HandlerOptions<S> & CheckedSettings<S>,
): ExpressEndpoint {
  const given = optionsCopy(options); // read once: a getter read twice could differ between the two
  const handler = createHandler(given);
  // Checked by createHandler; resolved again for the paths and limit: no second store, no warnings twice.
  const opts = resolveHandlerOptions({ ...given, idempotency: false, log: silentLogger });
  const eventRoutes = routes(opts.path, opts.trackingApi);
  const others = new Set([opts.healthPath, opts.livePath, opts.metricsPath]);
  const ours = (path: string) => others.has(path) || routeAt(eventRoutes, path) !== undefined;
  // The standalone server's refusal of a charset: on the Tracking API's paths, UTF-16 and UTF-32 only.
  const charsetOf = (req: ExpressRequest) =>
    checkCharset(req.headers['content-type'], (routeAt(eventRoutes, req.path)?.kind ?? 'event') !== 'event');
  const { maxBodyBytes, realm } = opts;
  const log = checkLogger(loggerOf(given)); // checked by createHandler: wrapped here to never throw
  // As the handler's own: no refusal made here is a 401, but the context is whole.
  const context: RefusalContext = { challenge: `Basic realm="${realm}", charset="UTF-8"`, maxBodyBytes, log };
  const counted = refusalCounter(handler, opts.accessLog, log);
  const served = (req: ExpressRequest) => servedHere(req, ours, serve, opts.path);

  const serve: SegmentMiddleware = (req, res, next) => {
    if (!served(req)) return next();
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
      counted(req, answer);
      sendError(req, res, answer, context);
      return;
    }
    handler(req, res);
  };

  const refuse: SegmentErrorMiddleware = (err, req, res, next) => {
    const type = bodyErrorType(err) ?? (undecoded(err, req) ? UNDECODED : undefined);
    const refused = type === undefined ? undefined : BODY_REFUSALS.get(type);
    if (refused === undefined || !served(req) || res.headersSent) return next(err);
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
    counted(req, answer);
    // A sender that went away mid-body is not answered, as in the pipeline: nobody is there to read it.
    if (type !== 'request.aborted') sendError(req, res, answer, context);
  };

  return Object.defineProperties([serve, refuse], {
    drain: { value: () => handler.drain() },
    idle: { value: () => handler.idle() },
    setApiKeys: { value: handler.setApiKeys },
    loadApiKeys: { value: handler.loadApiKeys },
    setSignatureSecret: { value: handler.setSignatureSecret },
    draining: { get: () => handler.draining },
    inFlight: { get: () => handler.inFlight },
    path: { value: handler.path },
    metrics: { value: handler.metrics },
  }) as ExpressEndpoint;
}

/** A refusal made here, counted and in the access log as the handler's own are (handler.ts, #refuse). */
function refusalCounter(handler: EndpointHandler, accessLog: boolean, log: Logger) {
  return (req: ExpressRequest, { status, code }: ErrorAnswer): void => {
    handler.metrics?.request('unknown', status, 0);
    if (accessLog) log.info({ status, code, ms: 0, path: loggedPath(req) }, 'event');
  };
}

/**
 * Whether the request is ours: a path of ours below the mount, or any path of a route that mounts us
 * (`app.post('/segment', ...)`, `handler` among its handlers). Express leaves a route's whole path in
 * `req.url`, which no path of ours matches below a mount: it is rewritten to the event path, its query
 * kept, as express rewrites it below a mount.
 */
function servedHere(
  req: ExpressRequest,
  ours: (path: string) => boolean,
  handler: unknown,
  eventPath: string,
): boolean {
  if (ours(req.path)) return true;
  if (!routedTo(req, handler)) return false;
  // A route: its path is the event path, but for what a wildcard in it matched, a path below a mount.
  const below = belowWildcard(req);
  if (below !== undefined && !ours(below)) return false; // the app's, as below a mount
  const query = req.url?.indexOf('?') ?? -1;
  const path = below ?? eventPath;
  req.url = query === -1 ? path : path + req.url?.slice(query);
  return true;
}

/**
 * What the wildcard of a route's path matched, as a path: `/v1/batch` of `/segment/v1/batch` on
 * `app.all('/segment/*rest')` (express 5 gives it as segments) or `app.all('/segment/*')` (express 4,
 * `params[0]`, on a path with no other unnamed group). `undefined` when it matched nothing, and on a route
 * without one: a `*` that follows a name or sits in a pattern (`:path*`, `:id(\d*)`) is no wildcard.
 * As sent, as below a mount: express gives the match decoded (`m%65trics` as `metrics`, `v1%2Fbatch` as
 * `v1/batch`), which a proxy rule that hides `/segment/metrics` by its path would not see coming.
 */
function belowWildcard(req: ExpressRequest): string | undefined {
  const { route, params } = req as { route?: { path?: unknown }; params?: Record<string, unknown> };
  const path = typeof route?.path === 'string' ? route.path : '';
  const wildcard = /(?:^|[/{])\*(\w+)?/.exec(path);
  // Express 4's bare `*` is params[0] only while no unnamed group comes before it.
  if (wildcard === null || (wildcard[1] === undefined && path.includes('('))) return undefined;
  const matched = params?.[wildcard[1] ?? '0'];
  const rest = (Array.isArray(matched) ? matched.join('/') : String(matched ?? '')).replace(/^\/+/, '');
  return rest === '' ? undefined : `/${sentAs(req.url ?? '', rest)}`;
}

/**
 * The end of `url`'s path that decodes to `decoded` (a trailing `/` aside, which the match may leave
 * out), as it was sent; one that cannot be found (nothing of the path decodes to it) is no path of ours.
 */
function sentAs(url: string, decoded: string): string {
  const segments = (url.split('?')[0] as string).split('/');
  const bare = (text: string) => text.replace(/\/+$/, '');
  for (let count = 1; count < segments.length; count++) {
    const tail = segments.slice(-count).join('/');
    if (bare(decodedOrNot(tail)) === bare(decoded)) return tail;
  }
  return '\0';
}

function decodedOrNot(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Whether `handler` is one of the handlers of the route the request is dispatched to, if any. */
function routedTo(req: ExpressRequest, handler: unknown): boolean {
  const { route } = req as { route?: { stack?: unknown } };
  return (
    Array.isArray(route?.stack) &&
    route.stack.some((layer: { handle?: unknown }) => layer?.handle === handler)
  );
}
