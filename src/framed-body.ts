import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import { checkType, contentType, type EventLimits, type ParsedBody, parseBody } from './body.ts';
import { decodedAsSent } from './encoding.ts';
import { EndpointError } from './errors.ts';
import { type BatchShape, checkParsed, isPlainObject, isStackOverflow } from './json.ts';
import { bodyTooLarge } from './refusals.ts';

// A body a framework in front of the endpoint already read (express.json(), express.raw(), a koa body
// parser): held to the same limits and guards as a body read here, and to what the sender declared.

/** The request's body as received and parsed. */
export interface ReceivedBody extends ParsedBody {
  /** Its JSON text as received, when this endpoint read it (not when a framework parsed it). */
  readonly text: string | undefined;
  /** Its length as sent, where a framework parsed it: the declared length of a body without a coding. */
  readonly sentBytes?: number | undefined;
}

/** A body a host left as bytes (a Buffer, any typed array, DataView or ArrayBuffer) as a Buffer. */
export function bytesOf(body: unknown): Buffer | undefined {
  if (Buffer.isBuffer(body)) return body;
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  return body instanceof ArrayBuffer ? Buffer.from(body) : undefined;
}

/**
 * The body a framework has already read into `req.body`, if any: text or bytes go through the same
 * type check (`anyType` as checkBodyHeaders), limits and parser as a body read here; a parsed value
 * through the same depth and prototype checks, which the framework's parser may not make, then as
 * written (`asWritten`). `undefined` when the body is still to be read, in the stream whatever
 * `req.body` holds.
 */
export function framedBody(
  req: IncomingMessage,
  limits: EventLimits,
  anyType = false,
  batch?: BatchShape,
): ReceivedBody | undefined {
  const body = (req as IncomingMessage & { body?: unknown }).body;
  // Set by a middleware that never read the stream (`req.body = req.body || {}`): the event is still there.
  if (body === undefined || (req.readableDidRead === false && req.readableEnded === false)) return undefined;
  const parsed = bytesOf(body) ?? body;
  const declared = emptiedBody(req, parsed);
  if (declared !== undefined) {
    const why = `req.body is {} where the request declared ${declared} bytes of body: the host replaced what it read`;
    throw hostBug(new Error(`${why} (\`req.body = req.body || {}\` after a middleware read the stream?)`));
  }
  if (typeof parsed === 'string' || Buffer.isBuffer(parsed)) {
    checkType(contentType(req), anyType);
    if (Buffer.byteLength(parsed) > limits.maxBodyBytes) throw bodyTooLarge(limits.maxBodyBytes);
    const given = decodedAsSent(parsed, req.headers['content-encoding'], limits.maxBodyBytes);
    // Bytes that are not UTF-8 are refused, as the reader refuses them, not read with replacement
    // characters in place of what the sender meant. A leading BOM dropped, as the reader drops it.
    if (typeof given !== 'string' && !isUtf8(given)) throw new EndpointError('SEG_INVALID_UTF8');
    const text = given.toString().replace(/^\ufeff/, '');
    const { value, refused } = parseBody(text, limits.maxDepth, req.headers['content-type'], batch);
    return { value, text, refused };
  }
  let checked: ReturnType<typeof checkParsed>;
  try {
    checked = checkParsed(parsed, limits.maxDepth, batch);
  } catch (err) {
    throw hostBug(err); // a getter or a Proxy of the host's that throws as it is read
  }
  if (checked !== undefined && !checked.ok) {
    // A cycle nests without end, but the host's parser made it, not the sender: a 500 (`written`).
    if (checked.code === 'SEG_TOO_DEEP') written(parsed);
    throw new EndpointError(checked.code, checked.message);
  }
  const sentBytes = plainLength(req);
  const { value, refused } = asWritten(parsed, limits, sentBytes, batch);
  // A batch's events refused on their own: as the host's value held them (a number past a double's range
  // is null once written), and as written (a host's toJSON may write what its value did not hold).
  const found = checked?.refused;
  const all =
    found === undefined || refused === undefined ? (found ?? refused) : new Map([...found, ...refused]);
  return { value, text: undefined, sentBytes, refused: all };
}

/**
 * More than a sender's `{}` takes with the spaces or line breaks a writer puts in, and less than the
 * shortest event that can pass (`{"type":"page","userId":"u"}`, 28 bytes).
 */
const EMPTY_OBJECT_MAX_BYTES = 16;

/**
 * The declared length of a body the host read and replaced by an empty object (a raw-body capture, then
 * `req.body = req.body || {}`): the event is gone, the host's bug (a 500, retried), not the sender's `{}`
 * (a 400). Only a body declared longer than a `{}` could be written, sent without a coding.
 */
function emptiedBody(req: IncomingMessage, parsed: unknown): number | undefined {
  if (!isPlainObject(parsed) || Object.keys(parsed).length > 0) return undefined;
  const declared = plainLength(req) ?? 0;
  return declared > EMPTY_OBJECT_MAX_BYTES ? declared : undefined;
}

/** The declared length of a body sent without a coding (which a host may have decoded), if any. */
function plainLength(req: IncomingMessage): number | undefined {
  const declared = req.headers['content-encoding'] === undefined ? req.headers['content-length'] : undefined;
  return declared === undefined ? undefined : Number(declared);
}

/**
 * A parsed body as JSON.stringify writes it, through the size limit and the parser's guards: what the
 * handlers see and the store keeps is then what was checked. It may hold what JSON has not (a host's
 * reviver made its timestamps Dates: every event a 400, which Segment does not retry), a toJSON no walk
 * sees (not enumerable), getters that answer differently each time, or more than the limit. The limit
 * is on `sentBytes` where known, as on a body read here: `1e20` is 4 bytes sent and 21 written, and
 * what is stored is held to its own budget (checkStoredSize).
 */
function asWritten(
  parsed: unknown,
  limits: EventLimits,
  sentBytes: number | undefined,
  batch: BatchShape | undefined,
): ParsedBody {
  const text = written(parsed);
  // Nested within the limit (checkParsed), it overflowed the stack only through a toJSON of the host's.
  if (text === undefined) throw hostBug(new RangeError('req.body overflowed the stack as it was written'));
  if ((sentBytes ?? Buffer.byteLength(text)) > limits.maxBodyBytes) throw bodyTooLarge(limits.maxBodyBytes);
  return parseBody(text, limits.maxDepth, undefined, batch);
}

/**
 * A parsed body as JSON.stringify writes it; `undefined` for one nested past the stack (the sender's, a
 * 400 for its depth). One JSON cannot write (a bigint, a cycle) or writes as nothing (a toJSON that
 * returns undefined) is the host's bug, never the sender's: a 500, retried, its cause logged.
 */
function written(parsed: unknown): string | undefined {
  let text: string | undefined;
  try {
    text = JSON.stringify(parsed);
  } catch (err) {
    if (isStackOverflow(err)) return undefined;
    throw hostBug(err);
  }
  if (text !== undefined) return text;
  throw hostBug(new TypeError('req.body writes as no JSON'));
}

const hostBug = (cause: unknown) => new EndpointError('SEG_INTERNAL', undefined, { cause });
