import type { IncomingMessage } from 'node:http';
import { type Coding, codingOf } from './encoding.ts';
import { EndpointError, quoted } from './errors.ts';
import { isHttp2, joinedHeader } from './http2.ts';
import { type BatchShape, type EventRefusals, isPlainObject, parseJson } from './json.ts';
import { bodyTooLarge } from './refusals.ts';
import { decodedRoom } from './routes.ts';

// `application/json`, with parameters, and any `type/x+json` (RFC 6839 structured syntax suffix).
const JSON_TYPE_RE = /^[\w.+-]+\/(?:[\w.+-]+\+)?json[ \t]*(?:;.*)?$/i;
// A `charset` parameter (RFC 9110 §8.3.2), its value possibly quoted; UTF-8 is JSON's only encoding.
const CHARSET_RE = /;[ \t]*charset[ \t]*=[ \t]*"?([^";, \t]*)/gi;
// US-ASCII is UTF-8's first 128 characters: its bytes read as UTF-8 are what was meant.
const UTF8_RE = /^(?:utf-?8|(?:us-)?ascii)$/i;
// A quoted-string's escape (RFC 9110 §5.6.4): `\x` stands for `x`.
const QUOTED_PAIR_RE = /\\(.)/g;
// Unicode's other encodings (UTF-7, -16, -32; "unicode" is Windows' UTF-16): no JSON text in them reads
// as UTF-8, and a host's parser decodes some of them, whatever a path takes.
const OTHER_UNICODE_RE = /^(?:utf(?!-?8$)\S+|ucs-?[24]\S*|unicode\S*)$/i;
// Any number of digits (RFC 9110 §8.6), leading zeros too: one past the limit is a 413, not a 400.
const LENGTH_RE = /^\d+$/;
const CHUNKED_RE = /^[ \t]*chunked[ \t]*$/i;
const CHUNKED_LAST_RE = /(?:^|,)[ \t]*chunked[ \t]*$/i;

/**
 * Checks what the headers say of the body before a byte of it is read: its type (415), its coding
 * (415), whether its length is known (411) and, when declared, whether it is within the limit (413,
 * without reading it): `maxBytes` as sent, and `decodedBytes` for a body without a coding, whose bytes
 * are sent as they are read. Returns the coding to decode. A missing Content-Type is taken as JSON: every
 * Segment sender sets it, and a hand-written client that forgets it should not lose events.
 * With `anyType` the declared type is not checked at all: the body must then parse as JSON (a 400
 * if not). The Tracking API paths need it: RudderStack's Node SDK labels its gzip JSON
 * `application/x-www-form-urlencoded`, and RudderStack's own gateway takes it.
 */
export function checkBodyHeaders(
  req: IncomingMessage,
  maxBytes: number,
  anyType = false,
  decodedBytes = maxBytes,
): Coding | undefined {
  checkType(contentType(req), anyType);
  const coding = codingOf(joinedHeader(req, 'content-encoding'));
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) {
    // Chunked must come last, or where the body ends is anyone's guess: a 400, and the connection
    // closed (RFC 9112 §6.3, what request smuggling relies on). Before it, any coding (gzip, ...) would
    // hand us bytes we cannot read as JSON (RFC 9112 §6.1: 501 for a transfer coding not understood).
    if (!CHUNKED_LAST_RE.test(te)) {
      throw new EndpointError(
        'SEG_BAD_REQUEST',
        `Transfer-Encoding ${quoted(te, 100)} does not end with chunked`,
      );
    }
    if (!CHUNKED_RE.test(te)) {
      throw new EndpointError(
        'SEG_TRANSFER_CODING',
        `Transfer-Encoding ${quoted(te, 100)} is not supported: send chunked`,
      );
    }
    return coding;
  }
  const length = req.headers['content-length'];
  if (length === undefined) {
    // Over HTTP/2 a body is framed by its stream (http2.ts): read and counted as a chunked one is.
    if (isHttp2(req)) return coding;
    throw new EndpointError('SEG_LENGTH_REQUIRED');
  }
  if (!LENGTH_RE.test(length)) throw new EndpointError('SEG_LENGTH_INVALID');
  if (coding !== undefined) {
    if (Number(length) > maxBytes) throw bodyTooLarge(maxBytes);
  } else if (Number(length) > decodedRoom(maxBytes, decodedBytes)) {
    throw bodyTooLarge(Math.min(maxBytes, decodedBytes));
  }
  return coding;
}

/**
 * The request's Content-Type. Node keeps the first of several: two sent that differ are a 400, or the
 * type checked might not be the one the body was written in. The values sent are compared with each
 * other, never with `req.headers`, which a host's middleware may have set or normalised.
 */
export function contentType(req: IncomingMessage): string | undefined {
  const raw: readonly string[] = req.rawHeaders ?? []; // a host's request-like object may have none
  let first: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length !== CONTENT_TYPE.length || name.toLowerCase() !== CONTENT_TYPE) continue;
    if (first === undefined) first = raw[i + 1];
    else if (raw[i + 1] !== first) {
      throw new EndpointError('SEG_BAD_REQUEST', 'More than one Content-Type header, and they differ');
    }
  }
  return req.headers['content-type'];
}

const CONTENT_TYPE = 'content-type';

/**
 * 415 for a type that is not JSON, and for JSON in a charset other than UTF-8; unless `anyType` (the
 * Tracking API's paths, where SDKs label JSON as they like: read as JSON is, in UTF-8, whatever it says).
 */
export function checkType(type: string | undefined, anyType: boolean): void {
  if (type === undefined || type === 'application/json') return;
  if (!anyType && !JSON_TYPE_RE.test(type)) {
    throw new EndpointError(
      'SEG_UNSUPPORTED_MEDIA_TYPE',
      `Content-Type must be application/json, not ${quoted(type, 100)}`,
    );
  }
  checkCharset(type, anyType);
}

/**
 * 415 for a body in a charset other than UTF-8 (its bytes would be read as UTF-8), named once or more;
 * `anyCharset` (the Tracking API's paths, where SDKs label JSON as they like): Unicode's others only.
 */
export function checkCharset(type: string | undefined, anyCharset = false): void {
  if (type === undefined) return;
  for (const [, given = ''] of type.matchAll(CHARSET_RE)) {
    // A quoted value's escapes (`"\utf-7"`) read as a host's parser reads them: the name they spell.
    const charset = given.replace(QUOTED_PAIR_RE, '$1');
    if (anyCharset ? !OTHER_UNICODE_RE.test(charset) : UTF8_RE.test(charset)) continue;
    throw new EndpointError(
      'SEG_UNSUPPORTED_MEDIA_TYPE',
      `Content-Type charset ${quoted(charset, 100)} is not supported: send UTF-8 JSON`,
    );
  }
}

export interface EventLimits {
  readonly maxBodyBytes: number;
  readonly bodyTimeoutMs: number;
  readonly maxDepth: number;
}

/** A JSON object, or the 400 that says what it is instead. */
export function asObject(value: unknown, what = 'Request body'): Record<string, unknown> {
  if (!isPlainObject(value)) {
    throw new EndpointError('SEG_NOT_OBJECT', `${what} must be a JSON object, not ${kind(value)}`);
  }
  return value;
}

/** A body parsed: its value, and the events of a batch refused on their own by parseJson's guards. */
export interface ParsedBody {
  readonly value: unknown;
  readonly refused?: EventRefusals | undefined;
}

/**
 * The body's text parsed as JSON (parseJson's guards; with `batch`, a body of that shape is a batch and
 * its events are guarded one by one), or a throw of the refusal that says why not.
 */
export function parseBody(
  text: string,
  maxDepth: number,
  type: string | undefined,
  batch?: BatchShape,
): ParsedBody {
  const result = parseJson(text, maxDepth, batch);
  if (result.ok) return result;
  // Not JSON and not declared as JSON either: say so, the likelier mistake is the sender's format.
  const declared =
    result.code === 'SEG_INVALID_JSON' && type !== undefined && !JSON_TYPE_RE.test(type)
      ? ` (it was sent as ${quoted(type, 100)})`
      : '';
  throw new EndpointError(result.code, result.message + declared);
}

function kind(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  return `a ${typeof value}`;
}
