import { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse, STATUS_CODES } from 'node:http';
import { Socket } from 'node:net';
import { dropRestOfBody, lastOnConnection, noteEnd } from './connection-end.ts';
import { cutIfHostAnswered, ownAnswer } from './early-headers.ts';
import type { ErrorAnswer } from './error-answer.ts';
import { ERRORS, type ErrorCode } from './errors.ts';
import { cutAnswer, endSession, endStream, isHttp2 } from './http2.ts';

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

/** An empty success answer decided, waiting for the end of its turn of the event loop. */
export interface PendingAnswer {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly status: number;
  /** Called once the answer is written. */
  readonly done: () => void;
}

// A turn's answers are written at the latest when this many wait, so that a turn that reads many
// requests does not hold the first one's answer for all of them.
const MAX_WAITING = 64;

/**
 * Empty success answers, written together once the event loop has taken every request its poll found
 * (in its check phase, `setImmediate`) instead of one by one as each event is taken. Under load each
 * write that finds its client asleep pays for waking it, and a client on this machine is woken far less
 * often by a burst than by a trickle (bench/README.md, "Answers written together"). A lone request
 * waits for no other: the loop reaches its check phase right after it.
 */
export class AnswerBatch {
  #waiting: PendingAnswer[] = [];
  #scheduled = false;
  readonly #closing: () => boolean;

  /** `closing`: whether answers end their connections now (while draining), asked as they are written. */
  constructor(closing: () => boolean) {
    this.#closing = closing;
  }

  /**
   * An answer decided while the loop takes requests: written at the end of the turn, or with 63 others.
   * One that does not go to a kernel socket (the fetch handler's Response, an injected request) gains
   * nothing from waiting, and would wait behind whatever its host queued for the turn's end: written at
   * once.
   */
  add(answer: PendingAnswer): void {
    if (!(answer.req.socket instanceof Socket)) {
      this.#write(answer, this.#closing());
      return;
    }
    this.#waiting.push(answer);
    if (this.#waiting.length >= MAX_WAITING) this.#flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flushScheduled);
    }
  }

  /**
   * An answer decided when a promise settled (an asynchronous handler; the store's commit, which settles
   * a group of events at once): written as soon as the promise reactions of the moment have run, with
   * the others they decided. Waiting for the end of the turn would hold a commit's answers for all the
   * work of the next poll (`nextTick` queued by a reaction runs once the microtask queue is empty).
   */
  addSettled(answer: PendingAnswer): void {
    this.#waiting.push(answer);
    if (this.#waiting.length === 1) process.nextTick(this.#flushSettled);
  }

  readonly #flushSettled = (): void => {
    this.#flush();
  };

  readonly #flushScheduled = (): void => {
    this.#scheduled = false;
    this.#flush();
  };

  #flush(): void {
    const answers = this.#waiting;
    this.#waiting = [];
    const closing = this.#closing();
    for (const answer of answers) this.#write(answer, closing);
  }

  #write({ req, res, status, done }: PendingAnswer, closing: boolean): void {
    try {
      // Over HTTP/2 a connection is not the request's to end: it takes no new stream (http2.ts).
      const http2 = closing && isHttp2(req);
      sendStatus(res, status, closing && !http2 && lastOnConnection(req));
      if (http2) endSession(req);
    } catch {
      // Node's writes do not throw for a gone client; whatever did, this answer's sender hears the
      // connection end (and retries), and the rest of the turn's answers still go out.
      cutAnswer(res);
    }
    done();
  }
}

export interface RefusalContext {
  /** The `WWW-Authenticate` challenge sent with a 401. */
  readonly challenge: string;
  readonly maxBodyBytes: number;
  /** Whether answers end their connections now (while draining), as successes do (AnswerBatch). */
  readonly closing?: () => boolean;
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
  ownAnswer(res);
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
  res.writeHead(reply.status, headers).end(body);
  noteEnd(res);
  if (!http2) dropRestOfBody(req, res);
  else if (!req.complete) endStream(req);
  if (http2 && draining) endSession(req);
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
export function sendHealth(req: IncomingMessage, res: ServerResponse, state: keyof typeof HEALTH): void {
  if (cutIfHostAnswered(res)) return;
  ownAnswer(res);
  const body = HEALTH[state];
  res.writeHead(state === 'ok' || state === 'live' ? 200 : 503, {
    'content-type': JSON_TYPE,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
  noteEnd(res);
}

function mayBeLarge(req: IncomingMessage, maxBytes: number): boolean {
  const length = req.headers['content-length'];
  // With neither header there is no body (RFC 9112 §6.3): nothing to drain.
  if (length === undefined) return req.headers['transfer-encoding'] !== undefined;
  return !(Number(length) <= maxBytes);
}

/** The Prometheus text exposition. */
export function sendMetrics(req: IncomingMessage, res: ServerResponse, text: string): void {
  if (cutIfHostAnswered(res)) return;
  ownAnswer(res);
  res.writeHead(200, {
    'content-type': 'text/plain; version=0.0.4; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : text);
  noteEnd(res);
}

/**
 * A refusal written on the raw socket, then the connection closed: for what Node's parser refused
 * before a request existed (there is no response object to write it with).
 */
export function rawRefusal(code: ErrorCode, headers = ''): string {
  const { status, message } = ERRORS[code];
  const body = refusalBody({ message, code });
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: ${JSON_TYPE}\r\n${headers}` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

function refusalBody(reply: { readonly message: string; readonly code: string }): string {
  return JSON.stringify({ message: reply.message, code: reply.code });
}
