import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { type AuthDecision, keyFingerprint, requestApiKey } from './auth.ts';
import { readEvent } from './body.ts';
import { createDispatcher, EventContext } from './dispatch.ts';
import { EndpointError, type ErrorAnswer, type ErrorCode, toErrorAnswer } from './errors.ts';
import { once } from './idempotency.ts';
import { Metrics } from './metrics.ts';
import { normalizeEvent } from './normalize.ts';
import { type HandlerOptions, resolveHandlerOptions } from './options.ts';
import { sendError, sendHealth, sendMetrics, sendStatus } from './respond.ts';
import { decodeSettings } from './settings.ts';
import { signedPayload, verifySignature } from './signature.ts';
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
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (path === opts.path) {
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
        processEvent(req, res).finally(settled);
      }
    } else if (path === opts.metricsPath && metrics !== undefined) {
      if (req.method === 'GET' || req.method === 'HEAD') sendMetrics(req, res, metrics.render(inFlight));
      else
        refuse(req, res, answer('SEG_METHOD_NOT_ALLOWED', 'Method not allowed: use GET'), {
          allow: 'GET, HEAD',
        });
    } else if (path === opts.healthPath) {
      if (req.method === 'GET' || req.method === 'HEAD') sendHealth(req, res, draining);
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

  async function processEvent(req: IncomingMessage, res: ServerResponse): Promise<void> {
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

      const { event: original, text } = await readEvent(req, opts);
      const secret =
        (typeof decision === 'object' ? decision.signatureSecret : undefined) ?? opts.signatureSecret;
      if (secret !== undefined)
        verifySignature(req.headers['x-signature'], secret, signedPayload(original, text));
      const event = normalizeEvent(original);
      type = checkType(event.type, decision);
      const known = type;
      const problem = validators[type](event);
      if (problem !== undefined) throw new EndpointError('SEG_INVALID_EVENT', problem);

      const key = apiKey;
      const run = () =>
        dispatch(known, event, new EventContext(key, settings, req.headers, log, original, text));
      const { messageId } = event;
      const outcome =
        idempotency !== undefined && typeof messageId === 'string' && messageId !== ''
          ? once(idempotency, `${apiKey}\n${messageId}`, run)
          : run();
      // A synchronous handler's answer is sent without a turn of the queue.
      const status = isPromise(outcome) ? await outcome : outcome;
      if (status === 'duplicate') {
        // Processed before: the sender missed our answer. Success again, without a second run.
        log.debug({ source: keyFingerprint(apiKey), messageId }, 'duplicate event');
      }
      // While draining, the connection goes with this answer: the next request would be refused anyway.
      if (status === 'duplicate') metrics?.duplicate();
      answered = status === 'duplicate' ? 200 : status;
      sendStatus(res, answered, draining);
    } catch (err) {
      const reply = toErrorAnswer(err);
      if (reply.internal !== undefined) {
        const source = apiKey === undefined ? undefined : keyFingerprint(apiKey);
        log.error({ err: reply.internal, source, status: reply.status }, 'event handler failed');
      }
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

function answer(code: ErrorCode, message?: string): ErrorAnswer {
  return toErrorAnswer(new EndpointError(code, message));
}

function quote(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | undefined)?.then === 'function';
}
