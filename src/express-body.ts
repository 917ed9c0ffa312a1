import type { IncomingMessage } from 'node:http';
import { codingOf, isIdentity } from './encoding.ts';
import { EndpointError, quoted } from './errors.ts';
import type { ExpressRequest } from './express.ts';
import { bytesOf } from './framed-body.ts';
import { isStackOverflow } from './json.ts';
import { serializedBytes } from './json-walks.ts';
import { bodyTooLarge } from './refusals.ts';

// What a body parser in front of the express middleware (express.ts) did with a request's body, as the
// pipeline must see it: a body it parsed, adopted under our limits; a body it refused, answered with
// our refusal in our words.

/** What body-parser (and raw-body) put on the errors they pass to `next`. */
export interface BodyParserError {
  readonly type: string;
  readonly body?: unknown;
  readonly limit?: unknown;
  readonly charset?: unknown;
}

/**
 * A body a parser in front has parsed, as the pipeline must see it. Body-parser reads an empty body as
 * `{}`: it goes on as the empty text it was (not JSON, a 400). Its limit (100 KiB unless configured) may
 * be above ours: a parsed body whose declared length is over `maxBodyBytes` goes on unread, so that the
 * pipeline's header check refuses it (413) where the standalone server does, after authentication.
 * Chunked or compressed, the declared length says nothing of it: what it holds is measured instead.
 */
export function adoptParsed(req: ExpressRequest, maxBodyBytes: number): boolean {
  const { body } = req;
  if (body === undefined || typeof body === 'string' || bytesOf(body) !== undefined) return true;
  const length = req.headers['content-length'];
  const coding = req.headers['content-encoding'];
  const coded = coding !== undefined && !isIdentity(coding);
  if (length === undefined || req.headers['transfer-encoding'] !== undefined || coded) {
    // Streamed, its length unknown, or decompressed (its declared length the compressed one): what it
    // holds, serialised again, is held to our limit (false: over).
    return measured(body, maxBodyBytes) <= maxBodyBytes;
  }
  if (length === '0') req.body = '';
  else if (Number(length) > maxBodyBytes) req.body = undefined;
  return true;
}

/**
 * The UTF-8 bytes of a parsed body serialised again (more than `max` once past it). JSON.stringify is
 * recursive: a body nested thousands deep, a few KiB sent, overflows the stack there (a RangeError, which
 * express would answer with its own HTML 500, retried by Segment), so such a body is counted without it,
 * and goes on to the pipeline, which refuses its depth (400) as the standalone server does.
 */
function measured(body: unknown, max: number): number {
  try {
    return Buffer.byteLength(JSON.stringify(body) ?? '');
  } catch (err) {
    // One JSON cannot write (a bigint, a cycle, a getter or toJSON of the host's that throws) goes on: the
    // pipeline answers the host's bug, a 500, its cause logged.
    if (!isStackOverflow(err)) return 0;
    try {
      return serializedBytes(body, max);
    } catch {
      return 0; // a getter that throws as it is walked: the same
    }
  }
}

/**
 * A body that did not decode as its Content-Encoding says: body-parser passes the decompression stream's
 * error on as a 400 without a `type` (zlib's, with its `code` and `errno`). `UNDECODED` is our name for
 * it among body-parser's types.
 */
export const UNDECODED = 'segment-endpoint.undecoded';
export function undecoded(err: unknown, req: IncomingMessage): boolean {
  if (typeof err !== 'object' || err === null || req.headers['content-encoding'] === undefined) return false;
  const { status, code, errno } = err as { status?: unknown; code?: unknown; errno?: unknown };
  return status === 400 && typeof code === 'string' && typeof errno === 'number';
}

/** The refusal `check` throws, if it throws one. */
export function caught(check: () => void): EndpointError | undefined {
  try {
    check();
    return undefined;
  } catch (err) {
    if (err instanceof EndpointError) return err;
    throw err;
  }
}

export function bodyErrorType(err: unknown): string | undefined {
  const type = typeof err === 'object' && err !== null ? (err as { type?: unknown }).type : undefined;
  return typeof type === 'string' ? type : undefined;
}

type BodyRefusal = (err: BodyParserError, req: IncomingMessage, maxBodyBytes: number) => EndpointError;

/**
 * Body-parser's refusals of a sender's body (by the `type` of its error), as our catalogue's. Its other
 * errors are the app's (its `verify` function's 403, a stream another middleware read: 500) and go on.
 */
export const BODY_REFUSALS: ReadonlyMap<string, BodyRefusal> = new Map<string, BodyRefusal>([
  ['entity.parse.failed', () => new EndpointError('SEG_INVALID_JSON')],
  [
    'entity.too.large',
    // The smaller limit is the one the body broke: the parser's, or ours when its is larger.
    (err, _req, max) => bodyTooLarge(typeof err.limit === 'number' ? Math.min(err.limit, max) : max),
  ],
  ['encoding.unsupported', (_err, req) => unsupportedEncoding(req.headers['content-encoding'])],
  [
    UNDECODED,
    (_err, req) => {
      const header = req.headers['content-encoding'];
      return (
        caught(() => codingOf(header)) ??
        new EndpointError('SEG_BAD_ENCODING', `Request body is not valid ${codingOf(header)} data`)
      );
    },
  ],
  [
    'charset.unsupported',
    (err) =>
      new EndpointError(
        'SEG_UNSUPPORTED_MEDIA_TYPE',
        `Content-Type charset ${quoted(String(err.charset))} is not supported: send UTF-8 JSON`,
      ),
  ],
  // express.urlencoded()'s: too many fields of a form, which is no body we take either.
  ['parameters.too.many', (_err, _req, max) => bodyTooLarge(max)],
  ['request.aborted', () => new EndpointError('SEG_BODY_ABORTED')],
  ['request.size.invalid', () => new EndpointError('SEG_BODY_ABORTED')],
]);

/** The standalone server's refusal of a coding it does not read; else the parser's (`inflate: false`). */
function unsupportedEncoding(header: string | undefined): EndpointError {
  return (
    caught(() => codingOf(header)) ??
    new EndpointError(
      'SEG_UNSUPPORTED_ENCODING',
      `Content-Encoding ${quoted(header ?? '')} is not accepted here: send the body uncompressed`,
    )
  );
}
