import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { behindClosingAnswer, endsItsConnection, readNothingBehind } from './connection-end.ts';
import { hostAnswered } from './early-headers.ts';
import type { EndpointHandler } from './endpoint-handler.ts';
import type { ErrorAnswer } from './error-answer.ts';
import { describeValue } from './errors.ts';
import { framingRefusal } from './framing.ts';
import { handedBefore } from './handed-once.ts';
import { Http2Sessions } from './http2.ts';
import { checkApiKeysSteps, requiredSecret, resolveApiKeysSteps } from './key-spec.ts';
import { Metrics, renderMetrics } from './metrics.ts';
import { checkOptionNames, HANDLER_OPTION_NAMES } from './option-names.ts';
import { type HandlerOptions, type ResolvedHandlerOptions, resolveHandlerOptions } from './options.ts';
import { EventPipeline } from './pipeline.ts';
import { readiness } from './readiness.ts';
import { refusal } from './refusals.ts';
import { type RefusalContext, sendContinue, sendError, sendHealth, sendMetrics } from './respond.ts';
import { EVENT_ROUTE, type Route, routes } from './routes.ts';
import type { CheckedSettings, Settings } from './settings.ts';
import { loggedPath, routeAt, targetPath } from './target.ts';

export type { EndpointHandler } from './endpoint-handler.ts';

/**
 * The endpoint as a plain `(req, res)` handler: the front door (route, request line, Host, method,
 * draining, load shedding, health and metrics) and, past it, the event pipeline (pipeline.ts). Every
 * refusal is JSON `{"message", "code"}`.
 */
export function createHandler<S = Settings>(
  options: HandlerOptions<S> & CheckedSettings<S>,
): EndpointHandler {
  checkOptionNames(options, HANDLER_OPTION_NAMES);
  return resolvedHandler(resolveHandlerOptions(options));
}

/** `createHandler` of options its caller resolved and checked the names of (createServer: it has more). */
export function resolvedHandler(opts: ResolvedHandlerOptions): EndpointHandler {
  const door = new FrontDoor(opts);
  const handler = ((req: IncomingMessage, res: ServerResponse) => {
    if (typeof res?.writeHead !== 'function') throw notHandedARequest(req);
    door.serve(req, res);
  }) as EndpointHandler;
  handler.drain = () => {
    door.draining = true;
    door.sessions.closeAll();
  };
  handler.idle = () => door.idle();
  handler.setApiKeys = (apiKeys) => door.pipeline.credentials.replaceKeys(resolveApiKeysSteps(apiKeys));
  handler.loadApiKeys = (apiKeys) => door.pipeline.credentials.loadKeys(checkApiKeysSteps(apiKeys));
  handler.setSignatureSecret = (secret) => {
    door.pipeline.signatureSecret = requiredSecret('setSignatureSecret', secret);
  };
  Object.defineProperties(handler, {
    draining: { get: () => door.draining, enumerable: true },
    inFlight: { get: () => door.inFlight, enumerable: true },
    path: { value: door.path, enumerable: true },
    metrics: { value: door.metrics, enumerable: true },
  });
  return handler;
}

/**
 * The handler called by something other than an HTTP server: most likely given to fastify as the plugin
 * or as its options, which fastify calls with the app.
 */
const notHandedARequest = (req: unknown) =>
  new TypeError(
    `The endpoint's handler takes (req, res) from an HTTP server, and was called with ${describeValue(req)}: ` +
      'to mount it in fastify, register segment-endpoint/fastify with { handler }',
  );

/** Where every request comes in: what is not an event is answered here, events go on to the pipeline. */
class FrontDoor {
  readonly path: string;
  readonly metrics: Metrics | undefined;
  draining = false;
  inFlight = 0;
  readonly #opts: ResolvedHandlerOptions;
  readonly #routes: ReadonlyMap<string, Route>;
  readonly #context: RefusalContext;
  readonly pipeline: EventPipeline;
  /** HTTP/2 connections, closed when draining starts (an HTTP/1 one closes with its next answer). */
  readonly sessions = new Http2Sessions();
  readonly #ready: () => boolean;
  #idleWaiters: Array<() => void> = [];

  constructor(opts: ResolvedHandlerOptions) {
    this.#opts = opts;
    this.path = opts.path;
    this.#routes = routes(opts.path, opts.trackingApi);
    this.metrics = opts.metricsPath === undefined ? undefined : new Metrics();
    this.#context = {
      challenge: `Basic realm="${opts.realm}", charset="UTF-8"`,
      maxBodyBytes: opts.maxBodyBytes,
      closing: () => this.draining,
      log: opts.log,
    };
    this.pipeline = new EventPipeline(opts, this.metrics, this.#context, () => this.draining);
    this.#ready = readiness(opts.ready, opts.log);
  }

  serve(req: IncomingMessage, res: ServerResponse): void {
    if (handedBefore(req, this.#opts.log)) return;
    if (req.httpVersionMajor === 2) this.sessions.note(req);
    if (res.headersSent) hostAnswered(this.#opts.log); // an embedding host's bug, said once
    // Read behind an answer that ends its connection: Node would write no answer of it, so nothing of it
    // is taken (its sender, unanswered, sends it again).
    if (behindClosingAnswer(req)) {
      readNothingBehind(req);
      return;
    }
    // HTTP/1.0 has no chunked coding: a message that says Transfer-Encoding is answered, then its
    // connection closed (RFC 9112 §6.1). So is one asking for an Upgrade, served as any request: Node's
    // parser stops at its end and drops the rest of that read (what was pipelined behind it).
    const te = req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined;
    if (te || req.headers.upgrade !== undefined) res.shouldKeepAlive = false;
    // Its answer ends the connection (so decided above): nothing read behind it is taken, since a success
    // is written at the end of its turn, after what was read behind it would have been taken. (Node reads
    // nothing behind a request that asked to close.)
    if (res.shouldKeepAlive === false) endsItsConnection(req);
    const url = req.url ?? '/';
    const path = url === this.path ? url : targetPath(url);
    const route = path === this.path ? EVENT_ROUTE : routeAt(this.#routes, path);
    const framing = framingRefusal(req);
    if (framing !== undefined) {
      this.#refuse(route, req, res, framing.reply, framing.close ? CLOSE : undefined);
    } else if (route !== undefined) {
      this.#event(req, res, route);
    } else if (path === this.#opts.metricsPath && this.metrics !== undefined) {
      if (this.#readable(req, res)) this.#sendMetrics(req, res, this.metrics);
    } else if (path === this.#opts.healthPath) {
      if (this.#readable(req, res))
        sendHealth(
          req,
          res,
          this.draining ? 'draining' : this.#ready() ? 'ok' : 'unavailable',
          this.#opts.log,
        );
    } else if (path === this.#opts.livePath) {
      if (this.#readable(req, res)) sendHealth(req, res, 'live', this.#opts.log);
    } else {
      // Where a host mounted it (express's `req.baseUrl`, the fetch handler's basePath), the path says so.
      const base = (req as IncomingMessage & { baseUrl?: unknown }).baseUrl;
      const mount = typeof base === 'string' ? base : '';
      const at = mount !== '' && this.path === '/' ? mount : `${mount}${this.path}`;
      this.#refuse(undefined, req, res, refusal('SEG_NOT_FOUND', `Not found: send events to ${at}`));
    }
  }

  /**
   * Resolves once no event is being processed: none answered, and no handler still running past its
   * timeout (answered 503), its claim remembered or released.
   */
  async idle(): Promise<void> {
    const late = this.pipeline.intake.late;
    while (this.inFlight > 0 || late.pending > 0) {
      if (this.inFlight > 0) await new Promise<void>((wake) => this.#idleWaiters.push(wake));
      else await late.settled();
    }
  }

  #event(req: IncomingMessage, res: ServerResponse, route: Route): void {
    if (req.headers.host === undefined && req.httpVersionMinor === 1) {
      // HTTP/1.1 requires Host (RFC 9112 §3.2); a request without one is not well-formed.
      this.#refuse(route, req, res, refusal('SEG_BAD_REQUEST', 'Missing Host header'));
    } else if (req.method !== 'POST') {
      this.#refuse(route, req, res, refusal('SEG_METHOD_NOT_ALLOWED'), { allow: 'POST' });
    } else if (this.draining) {
      this.#refuse(route, req, res, refusal('SEG_DRAINING'), CLOSE);
    } else if (this.inFlight >= this.#opts.maxInFlight) {
      // Shed at once rather than queue: Segment keeps the event and retries it.
      this.#refuse(route, req, res, refusal('SEG_OVERLOADED'));
    } else {
      this.inFlight++;
      this.pipeline.handle(req, res, route, this.#settled);
    }
  }

  /** This process's counts, or with several workers, the sum of theirs (its own if that fails). */
  #sendMetrics(req: IncomingMessage, res: ServerResponse, metrics: Metrics): void {
    const own = metrics.snapshot(this.inFlight);
    const { log } = this.#opts;
    if (metrics.gather === undefined) {
      sendMetrics(req, res, renderMetrics(own), log);
      return;
    }
    metrics.gather(own).then(
      (all) => sendMetrics(req, res, renderMetrics(all), log),
      () => sendMetrics(req, res, renderMetrics(own), log),
    );
  }

  /** Health and metrics are read with GET or HEAD; another method is a 405. */
  #readable(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method === 'GET' || req.method === 'HEAD') {
      // Expect: 100-continue on a request with no body: told to go on, or Node would end the connection
      // after the answer (which /metrics decides late, summed over workers) under what was read behind.
      sendContinue(res);
      return true;
    }
    const refused = refusal('SEG_METHOD_NOT_ALLOWED', 'Method not allowed: use GET or HEAD');
    this.#refuse(undefined, req, res, refused, READ_ONLY);
    return false;
  }

  /** Refuses `req`; on an event route it is counted and in the access log, as an event request read is. */
  #refuse(
    route: Route | undefined,
    req: IncomingMessage,
    res: ServerResponse,
    reply: ErrorAnswer,
    extra?: OutgoingHttpHeaders,
  ): void {
    sendError(req, res, reply, this.#context, extra);
    if (route === undefined) return;
    const { status, code } = reply;
    this.metrics?.request('unknown', status, 0);
    if (this.#opts.accessLog) this.#opts.log.info({ status, code, ms: 0, path: loggedPath(req) }, 'event');
  }

  readonly #settled = (): void => {
    this.inFlight--;
    if (this.inFlight === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const wake of waiters) wake();
    }
  };
}

const CLOSE: OutgoingHttpHeaders = Object.freeze({ connection: 'close' });
const READ_ONLY: OutgoingHttpHeaders = Object.freeze({ allow: 'GET, HEAD' });
