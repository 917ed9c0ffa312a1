// segment-endpoint/fastify: the endpoint as a fastify 5 plugin. Only types come from fastify (this
// file has no runtime import of it), so the package does not depend on it.

import type { IncomingMessage } from 'node:http';
import type {
  FastifyBaseLogger,
  FastifyPluginAsync,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
} from 'fastify';
import { describeValue } from './errors.ts';
import { createHandler, type EndpointHandler } from './handler.ts';
import { cutAnswer } from './http2.ts';
import { optionsCopy } from './option-names.ts';
import { OPTIONS } from './option-table.ts';
import type { HandlerOptions } from './options.ts';

/**
 * The plugin's options: those of `createHandler` (`log` defaults to the app's logger), or `handler`,
 * one made with `createHandler`, to keep a reference to it (`drain()`, `inFlight`) outside the plugin's
 * encapsulated context. Fastify's own `prefix` says where it is mounted.
 */
export type SegmentEndpointOptions = HandlerOptions | { readonly handler: EndpointHandler };

/**
 * The plugin context's `segmentEndpoint` decorator: the handler's lifecycle. An object, not the handler
 * itself: fastify's `getDecorator` binds a function, which would lose these.
 */
export type SegmentEndpointDecorator = Pick<
  EndpointHandler,
  'drain' | 'idle' | 'draining' | 'inFlight' | 'metrics' | 'setApiKeys' | 'loadApiKeys' | 'setSignatureSecret'
>;

/**
 * `app.register(segmentEndpoint, { prefix: '/segment', apiKeys, handlers })`: every path under the prefix
 * is the endpoint's, answered by the same handler as `createHandler`'s, byte for byte. It takes each
 * request over at `onRequest`, before fastify reads the body, so that the endpoint's body reader,
 * limits and refusals apply, not fastify's `bodyLimit`, parsers or error handler. On `app.close()` it
 * drains, and close waits for the events in flight.
 */
const segmentEndpoint: FastifyPluginAsync<SegmentEndpointOptions> = async (app, options) => {
  const handler = handlerOf(options, app.log);
  const mount = mountAt(app.prefix);

  function takeOver(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    reply.hijack();
    // The handler routes on `req.url`: it gets the target below the prefix, as an app mounted in
    // express does. Cut from the URL fastify routed here: after the app's own `rewriteUrl`, if any (the
    // URL as sent may not even hold the prefix). `request.originalUrl` is read first: fastify keeps it
    // from its first read ("in case of internal re-routing"), which must come before the cut.
    const sent = request.originalUrl;
    const routed = request.raw.url ?? sent;
    mount(request.raw, routed);
    try {
      handler(request.raw, reply.raw);
    } catch (err) {
      // After hijack() fastify would swallow this and leave the request hanging: reset it instead, a
      // failure Segment retries.
      request.log.error({ err }, 'segment-endpoint: the handler threw');
      cutAnswer(reply.raw);
    }
    // Routed by now: the app's later hooks (onResponse), and the endpoint's own log, see the URL as
    // fastify routed it.
    request.raw.url = routed;
    done();
  }

  app.decorate('segmentEndpoint', lifecycleOf(handler));
  // Every method fastify routes, on the prefix and below: the handler answers each, 405 and 404 included.
  // Taken over by the routes' own onRequest hook, which fastify runs after every onRequest hook of the
  // app, those added after the plugin too (an app-wide guard): a hook of the plugin's context would run
  // before those, and fastify runs no hook after a hijack.
  app.all('/', { onRequest: takeOver }, unreachable);
  app.all('/*', { onRequest: takeOver }, unreachable);
  // Fastify answers new requests 503 itself once closing (return503OnClosing); with that off, they
  // reach the handler, which answers its own 503 while draining. The events in flight are waited for
  // here, before fastify closes the server: with forceCloseConnections it closes every connection right
  // after the preClose hooks, and an event handled then would never be answered.
  // Bounded as the standalone server's close is: an event that never settles does not hold the app open.
  app.addHook('preClose', async () => {
    handler.drain();
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, CLOSE_LIMIT_MS);
    });
    await Promise.race([handler.idle(), limit]);
    clearTimeout(timer);
  });
};

/** How long close() waits for events in flight: the standalone server's shutdownTimeoutMs default. */
const CLOSE_LIMIT_MS = OPTIONS.shutdownTimeoutMs.default;

Object.assign(segmentEndpoint, {
  // What fastify-plugin would set, but without skip-override: the plugin stays encapsulated, so that
  // `prefix` applies. The name shows in errors and `app.hasPlugin('segment-endpoint')`.
  [Symbol.for('plugin-meta')]: { name: 'segment-endpoint', fastify: '5.x' },
  [Symbol.for('fastify.display-name')]: 'segment-endpoint',
});

export default segmentEndpoint;

// The options fastify consumes itself and passes on to the plugin too.
const REGISTER_OPTIONS = new Set(['prefix', 'logLevel', 'logSerializers']);

/** The handler given, or one made from the options (a bad option throws, and `app.ready()` rejects). */
function handlerOf(options: SegmentEndpointOptions, appLog: FastifyBaseLogger): EndpointHandler {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  if (!('handler' in options)) {
    // Inherited options too, as createHandler takes them: a misspelt one is refused there.
    return createHandler({
      ...optionsCopy(options, REGISTER_OPTIONS),
      log: options.log ?? logAt(appLog, options),
    });
  }
  const { handler } = options;
  if (
    typeof handler !== 'function' ||
    typeof handler.drain !== 'function' ||
    typeof handler.idle !== 'function'
  ) {
    throw new TypeError(
      `options.handler must be a handler made by createHandler, got ${describeValue(handler)}`,
    );
  }
  const others = Object.keys(options).filter((name) => name !== 'handler' && !REGISTER_OPTIONS.has(name));
  if (others.length > 0) {
    throw new TypeError(
      `options.handler is given: pass options.${others[0]} to createHandler, where it takes effect`,
    );
  }
  return handler;
}

/**
 * The app's logger at the register option `logLevel`, when given: fastify holds its own lines on the
 * plugin's routes to it, and the endpoint's are of the same requests.
 */
function logAt(appLog: FastifyBaseLogger, options: object): FastifyBaseLogger {
  const { logLevel } = options as { logLevel?: unknown };
  return typeof logLevel === 'string' ? appLog.child({}, { level: logLevel }) : appLog;
}

function lifecycleOf(handler: EndpointHandler): SegmentEndpointDecorator {
  return Object.freeze({
    drain: () => handler.drain(),
    idle: () => handler.idle(),
    setApiKeys: handler.setApiKeys,
    loadApiKeys: handler.loadApiKeys,
    setSignatureSecret: handler.setSignatureSecret,
    get draining() {
      return handler.draining;
    },
    get inFlight() {
      return handler.inFlight;
    },
    metrics: handler.metrics,
  });
}

// The scheme and authority of an absolute-form target (RFC 9112 §3.2.2): fastify routes it by its path.
const ABSOLUTE_FORM_RE = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;

/**
 * Rewrites `req.url` to the request target below the prefix, its query kept (`/segment/v1/track?x` →
 * `/v1/track?x`, `/segment` → `/`), and sets `req.baseUrl` to the prefix as sent, as express does: the
 * handler's 404 names the event path with it. The prefix is skipped by its number of segments, not its
 * text: fastify also routes `/%73egment` there, and a prefix may hold parameters (`/:tenant/segment`).
 * Slashes in a row count as one, as fastify counts them where it routes them (ignoreDuplicateSlashes).
 */
function mountAt(prefix: string): (req: IncomingMessage & { baseUrl?: string }, sent: string) => void {
  const depth = prefix.split('/').filter((segment) => segment !== '').length;
  // A run of slashes opens one segment: an app with ignoreDuplicateSlashes routes //segment here.
  const segments = new RegExp(`(?:/+[^/?#]*){${depth}}`, 'y');
  return (req, sent) => {
    const start = sent.charCodeAt(0) === 0x2f ? 0 : (ABSOLUTE_FORM_RE.exec(sent)?.[0].length ?? 0);
    segments.lastIndex = start;
    const matched = segments.exec(sent) !== null;
    const end = matched ? segments.lastIndex : start;
    const rest = matched ? sent.slice(end) : sent;
    req.url = rest.charCodeAt(0) === 0x2f ? rest : `/${rest}`;
    req.baseUrl = sent.slice(start, end);
  };
}

/** The routes' handler: never called, since the onRequest hook has taken every request over. */
function unreachable(): void {}
