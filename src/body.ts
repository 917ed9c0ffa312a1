import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Transform } from 'node:stream';
import { type Coding, codingOf, decoderFor } from './encoding.ts';
import { EndpointError } from './errors.ts';
import { checkParsed, parseJson } from './json.ts';
import { sendContinue } from './respond.ts';

// `application/json`, with parameters, and any `type/x+json` (RFC 6839 structured syntax suffix).
const JSON_TYPE_RE = /^[\w.+-]+\/(?:[\w.+-]+\+)?json[ \t]*(?:;.*)?$/i;
const LENGTH_RE = /^\d{1,15}$/;
const CHUNKED_RE = /^[ \t]*chunked[ \t]*$/i;

/**
 * Checks what the headers say of the body before a byte of it is read: its type (415), its coding
 * (415), whether its length is known (411) and, when declared, whether it is within the limit (413,
 * without reading it). Returns the coding to decode. A missing Content-Type is taken as JSON: every
 * Segment sender sets it, and a hand-written client that forgets it should not lose events.
 * With `anyType` the declared type is not checked at all: the body must then parse as JSON (a 400
 * if not). The Tracking API paths need it: RudderStack's Node SDK labels its gzip JSON
 * `application/x-www-form-urlencoded`, and RudderStack's own gateway takes it.
 */
export function checkBodyHeaders(
  req: IncomingMessage,
  maxBytes: number,
  anyType = false,
): Coding | undefined {
  const type = req.headers['content-type'];
  if (!anyType && type !== undefined && !JSON_TYPE_RE.test(type)) {
    throw new EndpointError(
      'SEG_UNSUPPORTED_MEDIA_TYPE',
      `Content-Type must be application/json, not ${quote(type)}`,
    );
  }
  const coding = codingOf(req.headers['content-encoding']);
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) {
    // Any coding but chunked (gzip, deflate, ...) would hand us bytes we cannot read as JSON (RFC 9112
    // §6.1: 501 for a transfer coding not understood).
    if (!CHUNKED_RE.test(te)) {
      throw new EndpointError(
        'SEG_TRANSFER_CODING',
        `Transfer-Encoding ${quote(te)} is not supported: send chunked`,
      );
    }
    return coding;
  }
  const length = req.headers['content-length'];
  if (length === undefined) throw new EndpointError('SEG_LENGTH_REQUIRED');
  if (!LENGTH_RE.test(length)) throw new EndpointError('SEG_LENGTH_INVALID');
  if (Number(length) > maxBytes) throw bodyTooLarge(maxBytes);
  return coding;
}

/**
 * Reads the body as a stream, counting every chunk: reading stops at the first byte over `maxBytes`
 * (413), and a body still incomplete after `timeoutMs` is a 408. The bytes must be UTF-8 (JSON's
 * encoding, RFC 8259 §8.1): anything else is a 400 rather than silently replaced characters.
 */
export function readBody(
  req: IncomingMessage,
  maxBytes: number,
  timeoutMs: number,
  coding: Coding | undefined,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const reading = new BodyRead(req, maxBytes, resolve, reject);
    reading.timer = setTimeout(onTimeout, timeoutMs, reading);
    (req as ReadingRequest)[READING] = reading;
    if (coding === undefined) {
      listen(req);
      return;
    }
    // The body waits in the request's buffer (no 'data' listener yet) while the decoder loads.
    decoderFor(coding).then(
      (decoder) => {
        if ((req as ReadingRequest)[READING] !== reading) return; // timed out meanwhile
        reading.decode(decoder);
        listen(req);
      },
      (err: unknown) => reading.finish(new EndpointError('SEG_INTERNAL', undefined, { cause: err })),
    );
  });
}

function listen(req: IncomingMessage): void {
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onAborted);
  req.on('aborted', onAborted);
}

// The listeners are module functions, called with the request as `this`, and the state of a read
// lives in one object: no closures made per request (this runs for every event).
const READING = Symbol('segment-endpoint.reading');
type ReadingRequest = IncomingMessage & { [READING]?: BodyRead };

class BodyRead {
  readonly chunks: Buffer[] = [];
  /** Bytes received, as sent (compressed, when they are). */
  received = 0;
  /** Bytes of the body itself: the same as `received`, or what the decoder made of them. */
  size = 0;
  timer: NodeJS.Timeout | undefined;
  decoder: Transform | undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly maxBytes: number,
    readonly resolve: (text: string) => void,
    readonly reject: (err: EndpointError) => void,
  ) {}

  /**
   * Bytes go through `decoder` (gzip, deflate) before they count as the body. The limit holds for the
   * decompressed bytes too: a small body that inflates past it (a decompression bomb) is a 413 as soon as
   * it crosses the limit, and the decoder is stopped.
   */
  decode(decoder: Transform): void {
    this.decoder = decoder;
    decoder.on('data', (chunk: Buffer) => this.add(chunk));
    decoder.on('end', () => this.finish(undefined));
    decoder.on('error', () => {
      const coding = this.req.headers['content-encoding'];
      this.finish(new EndpointError('SEG_BAD_ENCODING', `Request body is not valid ${coding} data`));
    });
  }

  add(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.size > this.maxBytes) {
      const what = this.decoder === undefined ? 'Request body' : 'Decompressed request body';
      this.finish(
        new EndpointError('SEG_BODY_TOO_LARGE', `${what} is larger than the limit of ${this.maxBytes} bytes`),
      );
    } else {
      this.chunks.push(chunk);
    }
  }

  finish(err: EndpointError | undefined): void {
    const { req } = this;
    if ((req as ReadingRequest)[READING] !== this) return; // settled already
    this.decoder?.destroy();
    clearTimeout(this.timer);
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onAborted);
    req.off('aborted', onAborted);
    (req as ReadingRequest)[READING] = undefined;
    if (err !== undefined) {
      req.pause();
      this.reject(err);
      return;
    }
    const { chunks } = this;
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, this.size);
    if (!isUtf8(body)) {
      this.reject(new EndpointError('SEG_INVALID_UTF8'));
      return;
    }
    // A UTF-8 byte order mark is legal in a file but not in JSON text; some senders add one.
    const start = body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
    this.resolve(body.toString('utf8', start));
  }
}

function onData(this: ReadingRequest, chunk: Buffer): void {
  const reading = this[READING];
  if (reading === undefined) return;
  reading.received += chunk.length;
  if (reading.decoder === undefined) reading.add(chunk);
  else if (reading.received > reading.maxBytes) reading.finish(bodyTooLarge(reading.maxBytes));
  else reading.decoder.write(chunk);
}

function onEnd(this: ReadingRequest): void {
  const reading = this[READING];
  if (reading?.decoder !== undefined)
    reading.decoder.end(); // finishes on the decoder's 'end'
  else reading?.finish(undefined);
}

function onAborted(this: ReadingRequest): void {
  this[READING]?.finish(new EndpointError('SEG_BODY_ABORTED'));
}

function onTimeout(reading: BodyRead): void {
  if ((reading.req as ReadingRequest)[READING] === reading) {
    reading.finish(new EndpointError('SEG_BODY_TIMEOUT'));
  }
}

export function bodyTooLarge(maxBytes: number): EndpointError {
  return new EndpointError(
    'SEG_BODY_TOO_LARGE',
    `Request body is larger than the limit of ${maxBytes} bytes`,
  );
}

function quote(value: string): string {
  return JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value);
}

export interface EventLimits {
  readonly maxBodyBytes: number;
  readonly bodyTimeoutMs: number;
  readonly maxDepth: number;
}

/**
 * The request's body as a JSON object: read and parsed here, or taken from `req.body` when a framework
 * has already read it (a string or Buffer goes through the same limits and parser; a parsed object
 * through the same depth and prototype checks, which the framework's parser may not make).
 */
export interface ReceivedBody {
  /** The body as parsed: any JSON value (the caller decides what shape it takes). */
  readonly value: unknown;
  /** Its JSON text as received, when this endpoint read it (not when a framework parsed it). */
  readonly text: string | undefined;
}

/**
 * The request's body as JSON: read and parsed here, or taken from `req.body` when a framework has
 * already read it (a string or Buffer goes through the same limits and parser; a parsed object through
 * the same depth and prototype checks, which the framework's parser may not make). With `anyType`,
 * whatever Content-Type the body declares (see `checkBodyHeaders`).
 */
export async function readJson(
  req: IncomingMessage,
  limits: EventLimits,
  res?: ServerResponse,
  anyType = false,
): Promise<ReceivedBody> {
  const parsed = (req as IncomingMessage & { body?: unknown }).body;
  const type = req.headers['content-type'];
  if (parsed === undefined) {
    const coding = checkBodyHeaders(req, limits.maxBodyBytes, anyType);
    // Only now, every check on the headers passed, is a sender waiting on Expect invited to send.
    if (res !== undefined) sendContinue(res);
    const text = await readBody(req, limits.maxBodyBytes, limits.bodyTimeoutMs, coding);
    return { value: parse(text, limits.maxDepth, type), text };
  }
  if (typeof parsed === 'string' || Buffer.isBuffer(parsed)) {
    if (Buffer.byteLength(parsed) > limits.maxBodyBytes) throw bodyTooLarge(limits.maxBodyBytes);
    const text = parsed.toString();
    return { value: parse(text, limits.maxDepth, type), text };
  }
  const refused = checkParsed(parsed, limits.maxDepth);
  if (refused !== undefined && !refused.ok) throw new EndpointError(refused.code, refused.message);
  return { value: parsed, text: undefined };
}

/** A JSON object, or the 400 that says what it is instead. */
export function asObject(value: unknown, what = 'Request body'): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new EndpointError('SEG_NOT_OBJECT', `${what} must be a JSON object, not ${kind(value)}`);
  }
  return value as Record<string, unknown>;
}

function parse(text: string, maxDepth: number, type: string | undefined): unknown {
  const result = parseJson(text, maxDepth);
  if (result.ok) return result.value;
  // Not JSON and not declared as JSON either: say so, the likelier mistake is the sender's format.
  const declared =
    result.code === 'SEG_INVALID_JSON' && type !== undefined && !JSON_TYPE_RE.test(type)
      ? ` (it was sent as ${quote(type)})`
      : '';
  throw new EndpointError(result.code, result.message + declared);
}

function kind(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return `a ${typeof value}`;
}
