import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { type AuthDecision, keyFingerprint, parseBasicAuth } from './auth.ts';
import { bodyTooLarge, checkBodyHeaders, readBody } from './body.ts';
import { type Context, createDispatcher } from './dispatch.ts';
import { EndpointError, type ErrorAnswer, toErrorAnswer } from './errors.ts';
import type { IdempotencyStore } from './idempotency.ts';
import { checkParsed, parseJson } from './json.ts';
import { normalizeEvent } from './normalize.ts';
import { type HandlerOptions, resolveHandlerOptions } from './options.ts';
import type { EventType } from './schemas.ts';
import { decodeSettings } from './settings.ts';
import { compileValidators } from './validate.ts';

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
  /** Resolves once no event is being processed. */
  idle(): Promise<void>;
}

const JSON_TYPE = 'application/json; charset=utf-8';
const EMPTY_OK: OutgoingHttpHeaders = { 'content-length': '0' };
const EMPTY_OK_CLOSE: OutgoingHttpHeaders = { 'content-length': '0', connection: 'close' };
const HEALTH_OK = '{"status":"ok"}';
const HEALTH_DRAINING = '{"status":"draining"}';

/**
 * The request pipeline, in the order of Segment's partner contract: route, authenticate, decode the
 * settings header, read and parse the body, normalise and validate the event, dispatch it to the
 * partner's handler, answer. Every refusal is JSON `{"message", "code"}`.
 */
export function createHandler(options: HandlerOptions): EndpointHandler {
  const opts = resolveHandlerOptions(options);
  const validators = compileValidators();
  const { supports, dispatch } = createDispatcher(opts.handlers, opts.handlerTimeoutMs);
  const { log, idempotency } = opts;
  const challenge = `Basic realm="${opts.realm}", charset="UTF-8"`;
  let inFlight = 0;
  let draining = false;
  let idleWaiters: Array<() => void> = [];

  const handler = ((req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    if (path === opts.path) {
      if (req.method !== 'POST') {
        sendError(req, res, answer('SEG_METHOD_NOT_ALLOWED'), { allow: 'POST' });
      } else if (draining) {
        sendError(req, res, answer('SEG_DRAINING'), { connection: 'close' });
      } else if (inFlight >= opts.maxInFlight) {
        // Shed at once rather than queue: Segment keeps the event and retries it.
        sendError(req, res, answer('SEG_OVERLOADED'));
      } else {
        inFlight++;
        processEvent(req, res).finally(settled);
      }
    } else if (path === opts.healthPath) {
      health(req, res);
    } else {
      sendError(req, res, answer('SEG_NOT_FOUND', `Not found: send events to ${opts.path}`));
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
    let source: string | undefined;
    try {
      // Node keeps the first of repeated Authorization headers; a request that carries two is ambiguous
      // about who sends it, so it is refused rather than read either way.
      if (repeats(req.rawHeaders, 'authorization')) {
        throw new EndpointError('SEG_AUTH_MALFORMED', 'More than one Authorization header');
      }
      const credentials = parseBasicAuth(req.headers.authorization);
      if (credentials === undefined) {
        throw new EndpointError(
          req.headers.authorization === undefined ? 'SEG_AUTH_MISSING' : 'SEG_AUTH_MALFORMED',
        );
      }
      const apiKey = credentials.user;
      if (apiKey === '') throw new EndpointError('SEG_AUTH_MISSING');
      source = keyFingerprint(apiKey);
      const decision = await opts.authenticate(apiKey);
      if (decision === 'unknown' || decision === false) throw new EndpointError('SEG_AUTH_UNKNOWN');
      if (decision === 'forbidden') throw new EndpointError('SEG_FORBIDDEN');

      const settings = decodeSettings(req.headers['x-segment-settings']);
      if (settings === undefined) throw new EndpointError('SEG_SETTINGS_INVALID');

      const original = await readEvent(req);
      const event = normalizeEvent(original);
      const type = checkType(event.type, decision);
      const problem = validators[type](event);
      if (problem !== undefined) throw new EndpointError('SEG_INVALID_EVENT', problem);

      const messageId = event.messageId;
      const key =
        idempotency !== undefined && typeof messageId === 'string' && messageId !== ''
          ? `${apiKey}\n${messageId}`
          : undefined;
      if (key !== undefined) {
        const claim = await (idempotency as IdempotencyStore).claim(key);
        if (claim === 'done') {
          // Processed before: the sender missed our answer. Success again, without a second run.
          log.debug({ source, messageId }, 'duplicate event');
          reply(res, 200);
          return;
        }
        if (claim === 'busy') throw new EndpointError('SEG_DUPLICATE_IN_FLIGHT');
      }

      const abort = new AbortController();
      const ctx: Context = {
        apiKey,
        settings,
        headers: req.headers,
        signal: abort.signal,
        log,
        receivedAt: new Date(),
        original,
      };
      let status: number;
      try {
        status = await dispatch(type, event, ctx, abort);
      } catch (err) {
        // Failed: not done, so that Segment's retry is processed.
        if (key !== undefined) await (idempotency as IdempotencyStore).release(key);
        throw err;
      }
      if (key !== undefined) await (idempotency as IdempotencyStore).complete(key);
      reply(res, status);
    } catch (err) {
      const reply = toErrorAnswer(err);
      if (reply.internal !== undefined) {
        log.error({ err: reply.internal, source, status: reply.status }, 'event handler failed');
      }
      sendError(req, res, reply);
    }
  }

  function reply(res: ServerResponse, status: number): void {
    // While draining, the connection goes with this answer: the next request would be refused anyway.
    if (!res.headersSent) res.writeHead(status, draining ? EMPTY_OK_CLOSE : EMPTY_OK).end();
  }

  async function readEvent(req: IncomingMessage): Promise<Record<string, unknown>> {
    const parsed = (req as IncomingMessage & { body?: unknown }).body;
    let value: unknown;
    if (parsed === undefined) {
      checkBodyHeaders(req, opts.maxBodyBytes);
      value = parse(await readBody(req, opts.maxBodyBytes, opts.bodyTimeoutMs), opts.maxDepth);
    } else if (typeof parsed === 'string' || Buffer.isBuffer(parsed)) {
      // A framework read the body already (express.text/raw): same limits, same parser.
      if (Buffer.byteLength(parsed) > opts.maxBodyBytes) throw bodyTooLarge(opts.maxBodyBytes);
      value = parse(parsed.toString(), opts.maxDepth);
    } else {
      // A framework parsed it (express.json and the like): its parser may guard neither depth nor prototype.
      const refused = checkParsed(parsed, opts.maxDepth);
      if (refused !== undefined && !refused.ok) throw new EndpointError(refused.code, refused.message);
      value = parsed;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new EndpointError('SEG_NOT_OBJECT', `Request body must be a JSON object, not ${kind(value)}`);
    }
    return value as Record<string, unknown>;
  }

  function checkType(type: unknown, decision: AuthDecision): EventType {
    if (typeof type !== 'string' || type === '') throw new EndpointError('SEG_TYPE_MISSING');
    if (!Object.hasOwn(validators, type)) {
      throw new EndpointError('SEG_TYPE_UNSUPPORTED', `${quote(type)} is not a Segment event type`);
    }
    const known = type as EventType;
    if (typeof decision === 'object' && !decision.allow.includes(known)) {
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

  function health(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendError(req, res, answer('SEG_METHOD_NOT_ALLOWED', 'Method not allowed: use GET'), {
        allow: 'GET, HEAD',
      });
      return;
    }
    const body = draining ? HEALTH_DRAINING : HEALTH_OK;
    res.writeHead(draining ? 503 : 200, {
      'content-type': JSON_TYPE,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  function sendError(
    req: IncomingMessage,
    res: ServerResponse,
    reply: ErrorAnswer,
    extra?: OutgoingHttpHeaders,
  ) {
    if (res.headersSent) return;
    const body = JSON.stringify({ message: reply.message, code: reply.code });
    const headers: OutgoingHttpHeaders = {
      'content-type': JSON_TYPE,
      'content-length': Buffer.byteLength(body),
      ...extra,
    };
    if (reply.status === 401) headers['www-authenticate'] = challenge;
    // Segment keeps its own backoff; other senders (SDKs, proxies) honour this.
    if (reply.status === 503) headers['retry-after'] = '1';
    // A body we did not read to its end cannot be skipped cheaply when it may be large, slow or endless:
    // close the connection rather than drain it.
    if (
      !req.complete &&
      (reply.status === 408 || reply.status === 413 || mayBeLarge(req, opts.maxBodyBytes))
    ) {
      headers.connection = 'close';
    }
    res.writeHead(reply.status, headers).end(body);
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
  });
  return handler;
}

function answer(code: ConstructorParameters<typeof EndpointError>[0], message?: string): ErrorAnswer {
  return toErrorAnswer(new EndpointError(code, message));
}

function parse(text: string, maxDepth: number): unknown {
  const result = parseJson(text, maxDepth);
  if (!result.ok) throw new EndpointError(result.code, result.message);
  return result.value;
}

function mayBeLarge(req: IncomingMessage, maxBytes: number): boolean {
  const length = req.headers['content-length'];
  // With neither header there is no body (RFC 9112 §6.3): nothing to drain.
  if (length === undefined) return req.headers['transfer-encoding'] !== undefined;
  return !(Number(length) <= maxBytes);
}

function kind(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return `a ${typeof value}`;
}

function quote(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

/** Whether a header appears more than once (rawHeaders alternates names and values, as sent). */
function repeats(rawHeaders: readonly string[], name: string): boolean {
  let seen = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const header = rawHeaders[i] as string;
    if (header.length === name.length && header.toLowerCase() === name) {
      if (seen) return true;
      seen = true;
    }
  }
  return false;
}
