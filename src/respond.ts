import { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse, STATUS_CODES } from 'node:http';
import { dropRestOfBody, lastOnConnection, noteEnd } from './connection-end.ts';
import { cutIfHostAnswered, ownAnswer } from './early-headers.ts';
import type { ErrorAnswer } from './error-answer.ts';
import { ERRORS, type ErrorCode } from './errors.ts';
import { cutAnswer, endSession, endStream, isHttp2 } from './http2.ts';
import type { Logger } from './log.ts';

// Writing answers. Success answers are empty and their headers built once; refusals are JSON
// `{"message", "code"}`, which Segment shows the customer in its debugger.

export const JSON_TYPE = 'application/json; charset=utf-8';
const EMPTY: OutgoingHttpHeaders = { 'content-length': '0' };
const EMPTY_CLOSE: OutgoingHttpHeaders = { 'content-length': '0', connection: 'close' };
const HEALTH = {
  ok: '{"status":"ok"}',
  draining: '{"status":"draining"}',
  unavailable: '{"status":"unavailable"}',
  live: '{"status":"live"}',
} as const;

/** An empty success answer. `close` ends the connection with it (while draining). */
export function sendStatus(res: ServerResponse, status: number, close: boolean): void {
  if (res.headersSent) {
    // The host's headers went first (hostAnswered): its status stands for this success.
    if (!res.writableEnded) res.end();
    return;
  }
  ownAnswer(res);
  res.writeHead(status, close ? EMPTY_CLOSE : EMPTY).end();
  noteEnd(res);
}

export interface RefusalContext {
  /** The `WWW-Authenticate` challenge sent with a 401. */
  readonly challenge: string;
  readonly maxBodyBytes: number;
  /** Whether answers end their connections now (while draining), as successes do (AnswerBatch). */
  readonly closing?: () => boolean;
  /** Where a refusal cut by its host's hook is said (once). */
  readonly log?: Logger;
}

/**
 * A refusal: JSON body, the headers its status calls for, and the connection closed when it must be.
 * Every refusal made once a request exists is written here; `context` is the handler's (its 401
 * challenge, its body limit).
 */
export function sendError(
  req: IncomingMessage,
  res: ServerResponse,
  reply: ErrorAnswer,
  context: RefusalContext,
  extra?: OutgoingHttpHeaders,
): void {
  if (cutIfHostAnswered(res)) return;
  const body = refusalBody(reply);
  const headers: OutgoingHttpHeaders = {
    'content-type': JSON_TYPE,
    'content-length': Buffer.byteLength(body),
    ...extra,
  };
  if (reply.status === 401) headers['www-authenticate'] = context.challenge;
  // Segment keeps its own backoff; other senders (SDKs, proxies) honour this.
  if (reply.status === 503 || reply.status === 429) headers['retry-after'] = String(reply.retryAfter ?? 1);
  // A body we did not read to its end cannot be skipped cheaply when it may be large, slow or endless:
  // close the connection rather than read the body out to keep it. The close lingers (noteEnd):
  // what still comes is dropped, for 5 s at most, so that the sender is not reset before the answer.
  // A malformed request (SEG_BAD_REQUEST): what follows it on the connection cannot be trusted either.
  // Draining: the connection is closed after its last answer, which says so.
  // Only the last request read on a connection closes it: those Node read behind it (their events
  // perhaps taken) are answered first, and the one that comes last closes it (a body read whole, as
  // theirs shows, leaves nothing to skip).
  const draining = context.closing?.() === true;
  const close =
    headers.connection === 'close' ||
    reply.code === 'SEG_BAD_REQUEST' ||
    draining ||
    (!req.complete &&
      (reply.status === 408 || reply.status === 413 || mayBeLarge(req, context.maxBodyBytes)));
  // Over HTTP/2 the request's stream ends instead, its connection serving the others (http2.ts).
  const http2 = isHttp2(req);
  if (close && !http2 && lastOnConnection(req)) {
    headers.connection = 'close';
  } else if (headers.connection === 'close') {
    delete headers.connection;
  }
  if (!written(res, context.log, reply.status, headers, body)) return;
  if (!http2) dropRestOfBody(req, res);
  else if (!req.complete) endStream(req);
  if (http2 && draining) endSession(req);
}

const saidHookThrew = new WeakSet<Logger>();

/**
 * Writing an answer threw: a hook of the host's on the response (a `writeHead` wrapper with a bug), since
 * Node's own writes do not throw for a gone client. The answer is cut (its sender retries) and the host
 * keeps running; logged once for each logger, with the host's error.
 */
export function hookThrew(log: Logger | undefined, err: unknown): void {
  if (log === undefined || saidHookThrew.has(log)) return;
  saidHookThrew.add(log);
  log.error(
    { err },
    "writing an answer threw (a hook of the host's on the response?): its connection was cut, and the sender retries",
  );
}

/**
 * `100 Continue`, for a client that sent `Expect: 100-continue` and holds its body back until told
 * (RFC 9110 §10.1.1): called once the headers have passed every check, right before the body is read.
 * Node sends it itself before any handler runs unless the server listens for 'checkContinue' (ours
 * does); mounted in another server, it has gone already. Node records both facts on the response
 * (lib/_http_server.js): `_expect_continue` (its reading of the header, HTTP/1.1 only) and `_sent100`.
 */
export function sendContinue(res: ServerResponse): void {
  const state = res as ServerResponse & { _expect_continue?: boolean; _sent100?: boolean };
  if (state._expect_continue === true && state._sent100 !== true) res.writeContinue();
}

/**
 * The health answer: 200 `{"status":"ok"}`, or 503 `{"status":"draining"}` / `{"status":"unavailable"}`
 * (events cannot be stored now), so a load balancer routes elsewhere. No body for HEAD.
 */
export function sendHealth(
  req: IncomingMessage,
  res: ServerResponse,
  state: keyof typeof HEALTH,
  log?: Logger,
): void {
  if (cutIfHostAnswered(res)) return;
  const body = HEALTH[state];
  const headers = {
    'content-type': JSON_TYPE,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  };
  written(
    res,
    log,
    state === 'ok' || state === 'live' ? 200 : 503,
    headers,
    req.method === 'HEAD' ? undefined : body,
  );
}

function mayBeLarge(req: IncomingMessage, maxBytes: number): boolean {
  const length = req.headers['content-length'];
  // With neither header there is no body (RFC 9112 §6.3): nothing to drain.
  if (length === undefined) return req.headers['transfer-encoding'] !== undefined;
  return !(Number(length) <= maxBytes);
}

/** The Prometheus text exposition. */
export function sendMetrics(req: IncomingMessage, res: ServerResponse, text: string, log?: Logger): void {
  if (cutIfHostAnswered(res)) return;
  const headers = {
    'content-type': 'text/plain; version=0.0.4; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  };
  written(res, log, 200, headers, req.method === 'HEAD' ? undefined : text);
}

/**
 * Writes an answer with a body (a refusal, health, metrics). A hook of the host's on the response that
 * throws as it is written cuts it instead (hookThrew): the throw would otherwise reach the host's request
 * listener, the body's 'end' listener or a promise's callback, and end the host's process. False if cut.
 */
function written(
  res: ServerResponse,
  log: Logger | undefined,
  status: number,
  headers: OutgoingHttpHeaders,
  body: string | undefined,
): boolean {
  try {
    ownAnswer(res);
    res.writeHead(status, headers).end(body);
  } catch (err) {
    cutAnswer(res);
    hookThrew(log, err);
    return false;
  }
  noteEnd(res);
  return true;
}

/**
 * A refusal written on the raw socket, then the connection closed: for what Node's parser refused
 * before a request existed (there is no response object to write it with).
 */
export function rawRefusal(code: ErrorCode, headers = '', message: string = ERRORS[code].message): string {
  const { status } = ERRORS[code];
  const body = refusalBody({ message, code });
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${JSON_TYPE}\r\n${headers}` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

function refusalBody(reply: { readonly message: string; readonly code: string }): string {
  return JSON.stringify({ message: reply.message, code: reply.code });
}
