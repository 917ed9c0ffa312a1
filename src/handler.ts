import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { type AuthDecision, keyFingerprint, repeats, requestApiKey } from './auth.ts';
import {
  batchAnswer,
  type EventResult,
  eventsOf,
  MAX_EVENT_BYTES,
  measure,
  type Route,
  routes,
} from './batch.ts';
import { asObject, readJson } from './body.ts';
import { createDispatcher, EventContext } from './dispatch.ts';
import { EndpointError, type ErrorAnswer, type ErrorCode, toErrorAnswer } from './errors.ts';
import { once } from './idempotency.ts';
import { Metrics } from './metrics.ts';
import { normalizeEvent } from './normalize.ts';
import { type HandlerOptions, resolveHandlerOptions } from './options.ts';
import { isPromise } from './promise.ts';
import { sendError, sendHealth, sendMetrics, sendStatus } from './respond.ts';
import { decodeSettings, type Settings } from './settings.ts';
import { verifySignature } from './signature.ts';
import type { EventType } from './types.ts';
import { eventValidators } from './validate.ts';

/** A plain `(req, res)` function, to mount in any node:http/https server, plus its lifecycle. */
export interface EndpointHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  /** Stops taking events: new ones get 503 with `Connection: close`, health answers draining. */
  drain(): void;
  readonly draining: boolean;
  /** Events being processed now. */
  readonly inFlight: number;
  /** The path events are taken at. */
  readonly path: string;
  /** The counters served on `metricsPath`, when it is set. */
  readonly metrics: Metrics | undefined;
  /** Resolves once no event is being processed. */
  idle(): Promise<void>;
}

const EVENT_ROUTE: Route = Object.freeze({ kind: 'event' });

/** What the request-level checks established, for each event it carries. */
interface Accepted {
  readonly apiKey: string;
  readonly decision: AuthDecision;
  readonly settings: Settings;
  readonly headers: IncomingHttpHeaders;
}

/**
 * The request pipeline, in the order of Segment's partner contract: route, authenticate, decode the
 * settings header, read and parse the body, normalise and validate the event, skip a duplicate,
 * dispatch it to the partner's handler, answer. Every refusal is JSON `{"message", "code"}`.
 */
export function createHandler(options: HandlerOptions): EndpointHandler {
  const opts = resolveHandlerOptions(options);
  const validators = eventValidators();
  const { supports, dispatch } = createDispatcher(opts.handlers, opts.handlerTimeoutMs);
  const { log, idempotency } = opts;
  const refusal = {
    challenge: `Basic realm="${opts.realm}", charset="UTF-8"`,
    maxBodyBytes: opts.maxBodyBytes,
  };
  const table = routes(opts.path, opts.trackingApi);
  const metrics = opts.metricsPath === undefined ? undefined : new Metrics();
  const observing = metrics !== undefined || opts.accessLog;
  let inFlight = 0;
  let draining = false;
  let idleWaiters: Array<() => void> = [];

  const refuse = (
    req: IncomingMessage,
    res: ServerResponse,
    reply: ErrorAnswer,
    extra?: OutgoingHttpHeaders,
  ) => sendError(req, res, reply, refusal, extra);

  const handler = ((req: IncomingMessage, res: ServerResponse) => {
    const path = targetPath(req.url ?? '/');
    const route = path === opts.path ? EVENT_ROUTE : table.get(path);
    // Of the versions that are not 1.x, llhttp passes HTTP/2.0 on (others, such as HTTP/3.0, reach the
    // server's clientError), and reads a request line without a version as HTTP/0.9: a garbled line.
    if (req.httpVersionMajor >= 2) {
      refuse(req, res, answer('SEG_HTTP_VERSION'), { connection: 'close' });
    } else if (req.httpVersionMajor === 0) {
      refuse(req, res, answer('SEG_BAD_REQUEST', 'The request line has no HTTP/1.1 version'), {
        connection: 'close',
      });
    } else if (repeats(req.rawHeaders, 'host')) {
      // Node keeps the first; which host was meant is ambiguous (RFC 9112 §3.2: a 400).
      refuse(req, res, answer('SEG_BAD_REQUEST', 'More than one Host header'));
    } else if (route !== undefined) {
      if (req.headers.host === undefined && req.httpVersionMinor === 1) {
        // HTTP/1.1 requires Host (RFC 9112 §3.2); a request without one is not well-formed.
        refuse(req, res, answer('SEG_BAD_REQUEST', 'Missing Host header'));
      } else if (req.method !== 'POST') {
        refuse(req, res, answer('SEG_METHOD_NOT_ALLOWED'), { allow: 'POST' });
      } else if (draining) {
        refuse(req, res, answer('SEG_DRAINING'), { connection: 'close' });
        metrics?.request('unknown', 503, 0);
      } else if (inFlight >= opts.maxInFlight) {
        // Shed at once rather than queue: Segment keeps the event and retries it.
        refuse(req, res, answer('SEG_OVERLOADED'));
        metrics?.request('unknown', 503, 0);
      } else {
        inFlight++;
        processEvent(req, res, route).finally(settled);
      }
    } else if (path === opts.metricsPath && metrics !== undefined) {
      if (req.method === 'GET' || req.method === 'HEAD') sendMetrics(req, res, metrics.render(inFlight));
      else
        refuse(req, res, answer('SEG_METHOD_NOT_ALLOWED', 'Method not allowed: use GET'), {
          allow: 'GET, HEAD',
        });
    } else if (path === opts.healthPath) {
      if (req.method === 'GET' || req.method === 'HEAD')
        sendHealth(req, res, draining ? 'draining' : opts.ready() ? 'ok' : 'unavailable');
      else
        refuse(req, res, answer('SEG_METHOD_NOT_ALLOWED', 'Method not allowed: use GET'), {
          allow: 'GET, HEAD',
        });
    } else {
      refuse(req, res, answer('SEG_NOT_FOUND', `Not found: send events to ${opts.path}`));
    }
  }) as EndpointHandler;

  const settled = () => {
    inFlight--;
    if (inFlight === 0 && idleWaiters.length > 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const wake of waiters) wake();
    }
  };

  async function processEvent(req: IncomingMessage, res: ServerResponse, route: Route): Promise<void> {
    const started = observing ? performance.now() : 0;
    let apiKey: string | undefined;
    let type: EventType | undefined;
    let answered: number;
    try {
      apiKey = requestApiKey(req);
      const pending = opts.authenticate(apiKey);
      const decision = isPromise(pending) ? await pending : pending;
      if (decision === 'unknown' || decision === false) throw new EndpointError('SEG_AUTH_UNKNOWN');
      if (decision === 'forbidden') throw new EndpointError('SEG_FORBIDDEN');

      const settings = decodeSettings(req.headers['x-segment-settings']);
      if (settings === undefined) throw new EndpointError('SEG_SETTINGS_INVALID');

      const { value, text } = await readJson(req, opts, res, route.kind !== 'event');
      const secret =
        (typeof decision === 'object' ? decision.signatureSecret : undefined) ?? opts.signatureSecret;
      if (secret !== undefined) verifySignature(req.headers, secret, value, text, opts.signatureLegacyBatch);
      const { events, batch } = eventsOf(value, route, text);
      const request: Accepted = { apiKey, decision, settings, headers: req.headers };

      if (!batch) {
        const seen: { type?: EventType } | undefined = observing ? {} : undefined;
        try {
          // The body's own text goes with the event only when the event is the body as sent.
          const raw = route.kind === 'event' ? text : undefined;
          const status = accept(request, events[0], raw, 'Request body', seen);
          answered = isPromise(status) ? await status : status;
        } finally {
          type = seen?.type;
        }
        sendStatus(res, answered, draining);
      } else {
        const results = await acceptBatch(request, events);
        const reply = batchAnswer(results);
        if (reply === undefined) sendStatus(res, 200, draining);
        else refuse(req, res, reply);
        answered = reply?.status ?? 200;
      }
    } catch (err) {
      const reply = toErrorAnswer(err);
      logInternal(reply, apiKey);
      refuse(req, res, reply);
      answered = reply.status;
    }
    if (observing) {
      const seconds = (performance.now() - started) / 1000;
      metrics?.request(type ?? 'unknown', answered, seconds);
      if (opts.accessLog) {
        const source = apiKey === undefined ? undefined : keyFingerprint(apiKey);
        log.info(
          { status: answered, type, ms: Math.round(seconds * 1e4) / 10, source, url: req.url },
          'event',
        );
      }
    }
  }

  /**
   * One event, after the request's own checks: normalised, typed, validated, then processed at most
   * once per messageId. Throws the refusal; `status` settles with the answer (or rejects).
   */
  function accept(
    request: Accepted,
    received: unknown,
    text: string | undefined,
    what: string,
    seen?: { type?: EventType },
  ): number | Promise<number> {
    const original = asObject(received, what);
    const event = normalizeEvent(original);
    const type = checkType(event.type, request.decision);
    if (seen !== undefined) seen.type = type;
    const problem = validators[type](event);
    if (problem !== undefined) throw new EndpointError('SEG_INVALID_EVENT', problem);
    const { apiKey } = request;
    const run = () =>
      dispatch(type, event, new EventContext(apiKey, request.settings, request.headers, log, original, text));
    const { messageId } = event;
    const outcome =
      idempotency !== undefined && typeof messageId === 'string' && messageId !== ''
        ? once(idempotency, `${apiKey}\n${messageId}`, run)
        : run();
    // A synchronous handler's answer is sent without a turn of the queue.
    return isPromise(outcome)
      ? outcome.then((status) => counted(status, apiKey, messageId))
      : counted(outcome, apiKey, messageId);
  }

  /**
   * The events of a batch, each through the same steps as a single one. Their sizes are measured first
   * (the request is refused whole when storing them would cost too much); then they are taken a slice
   * at a time, yielding to the event loop between slices, so that a large batch does not hold up the
   * requests on other connections.
   */
  async function acceptBatch(request: Accepted, events: readonly unknown[]): Promise<EventResult[]> {
    const settingsBytes = Buffer.byteLength(JSON.stringify(request.settings));
    const sizes = measure(events, settingsBytes, 2 * opts.maxBodyBytes);
    const pending: Array<Promise<EventResult>> = [];
    for (let index = 0; index < events.length; index++) {
      if (index > 0 && index % BATCH_SLICE === 0) await nextTurn();
      pending.push(acceptOne(request, events[index], sizes[index] as number, index));
    }
    return Promise.all(pending);
  }

  async function acceptOne(
    request: Accepted,
    one: unknown,
    size: number,
    index: number,
  ): Promise<EventResult> {
    try {
      if (size > MAX_EVENT_BYTES) {
        throw new EndpointError('SEG_BODY_TOO_LARGE', `An event may be at most ${MAX_EVENT_BYTES} bytes`);
      }
      return { index, status: await accept(request, one, undefined, `Event #${index}`) };
    } catch (err) {
      const reply = toErrorAnswer(err);
      logInternal(reply, request.apiKey);
      return { index, status: reply.status, code: reply.code, message: reply.message };
    }
  }

  function counted(status: number | 'duplicate', apiKey: string, messageId: unknown): number {
    if (status !== 'duplicate') return status;
    // Processed before: the sender missed our answer. Success again, without a second run.
    metrics?.duplicate();
    log.debug({ source: keyFingerprint(apiKey), messageId }, 'duplicate event');
    return 200;
  }

  function logInternal(reply: ErrorAnswer, apiKey: string | undefined): void {
    if (reply.internal === undefined) return;
    const source = apiKey === undefined ? undefined : keyFingerprint(apiKey);
    log.error({ err: reply.internal, source, status: reply.status }, 'event handler failed');
  }

  function checkType(type: unknown, decision: AuthDecision): EventType {
    if (typeof type !== 'string' || type === '') throw new EndpointError('SEG_TYPE_MISSING');
    if (!Object.hasOwn(validators, type)) {
      throw new EndpointError('SEG_TYPE_UNSUPPORTED', `${quote(type)} is not a Segment event type`);
    }
    const known = type as EventType;
    if (typeof decision === 'object' && decision.allow !== undefined && !decision.allow.includes(known)) {
      throw new EndpointError(
        'SEG_TYPE_FORBIDDEN',
        `This API key is not permitted to send "${known}" events`,
      );
    }
    if (!supports(known)) {
      throw new EndpointError('SEG_TYPE_UNSUPPORTED', `This endpoint does not support "${known}" events`);
    }
    return known;
  }

  handler.drain = () => {
    draining = true;
  };
  handler.idle = () =>
    inFlight === 0 ? Promise.resolve() : new Promise<void>((wake) => idleWaiters.push(wake));
  Object.defineProperties(handler, {
    draining: { get: () => draining, enumerable: true },
    inFlight: { get: () => inFlight, enumerable: true },
    path: { value: opts.path, enumerable: true },
    metrics: { value: metrics, enumerable: true },
  });
  return handler;
}

// Events of a batch taken between two turns of the event loop: small enough that a batch of the largest
// size holds the loop for a few milliseconds at a time.
const BATCH_SLICE = 64;

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

// The scheme and authority of an absolute-form target, `https://host:port` (RFC 9112 §3.2.2).
const ABSOLUTE_FORM_RE = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;

/**
 * The path a request is routed by: an origin-form target (`/v1/track?x`) up to its query; an
 * absolute-form one (`https://host/v1/track`, which a server must accept, RFC 9112 §3.2.2) by the path
 * after its authority, `/` when it has none.
 */
function targetPath(url: string): string {
  const start = url.charCodeAt(0) === 0x2f ? 0 : (ABSOLUTE_FORM_RE.exec(url)?.[0].length ?? 0);
  const query = url.indexOf('?', start);
  const path = query === -1 ? url.slice(start) : url.slice(start, query);
  return path === '' ? '/' : path;
}

function answer(code: ErrorCode, message?: string): ErrorAnswer {
  return toErrorAnswer(new EndpointError(code, message));
}

function quote(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}
