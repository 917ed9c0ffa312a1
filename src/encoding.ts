import { isUtf8 } from 'node:buffer';
import type { Transform } from 'node:stream';
import { EndpointError } from './errors.ts';
import { bodyTooLarge } from './refusals.ts';

// Content-Encoding of a request body (RFC 9110 §8.4): some SDKs gzip their events. The limit on the
// body applies to what comes out of the decoder too (see BodyRead.decodeAll). node:zlib is loaded on the
// first compressed body only: most endpoints never see one, and it costs resident memory (bench/HISTORY.md).

export type Coding = 'gzip' | 'deflate';

const CODINGS: Readonly<Record<string, Coding>> = { gzip: 'gzip', 'x-gzip': 'gzip', deflate: 'deflate' };

/**
 * The coding a Content-Encoding header names: `undefined` for none or `identity`; 415 for a coding
 * this endpoint does not read (br, zstd, or a list of several).
 */
export function codingOf(header: string | undefined): Coding | undefined {
  if (header === undefined || isIdentity(header)) return undefined;
  const known = knownCoding(header);
  if (known === undefined) {
    throw new EndpointError(
      'SEG_UNSUPPORTED_ENCODING',
      `Content-Encoding ${JSON.stringify(header.slice(0, 64))} is not supported: send gzip, deflate or none`,
    );
  }
  return known;
}

/** The coding of ours a Content-Encoding header names, if it names one. */
const knownCoding = (header: string | undefined): Coding | undefined => {
  const named = header?.trim().toLowerCase() ?? '';
  return Object.hasOwn(CODINGS, named) ? CODINGS[named] : undefined;
};

/** What a Content-Encoding header says when the body is not coded. */
const NOT_CODED: ReadonlySet<string> = new Set(['', 'identity']);

/** Whether a Content-Encoding header says the body is not coded: empty, or `identity`. */
export const isIdentity = (header: string): boolean => NOT_CODED.has(header.trim().toLowerCase());

/** Makes a body's decoder, given its compressed bytes (all of them: see BodyRead.decodeAll). */
export type MakeDecoder = (compressed: Buffer) => Transform;

/**
 * How to decode `coding`. `deflate` names the zlib format (RFC 9110 §8.4.1.2), but some senders send
 * the bare deflate stream under that name: as browsers and undici do, the zlib header's check tells
 * which one came.
 */
export async function decoderFor(coding: Coding): Promise<MakeDecoder> {
  const zlib = await import('node:zlib');
  if (coding === 'gzip') return () => zlib.createGunzip();
  return (compressed) => (zlibWrapped(compressed) ? zlib.createInflate() : zlib.createInflateRaw());
}

/**
 * Bytes a host read into `req.body` itself: as sent, still in the coding the request's Content-Encoding
 * names (raw-body, a framework's raw buffer), or decoded by its parser, which leaves the header in place
 * (express.raw). Compressed data is told by its first bytes, which no JSON text opens with (gzip's
 * 0x1f 0x8b, a zlib header), or by not being UTF-8 (bare deflate), and decoded at once: within `maxBytes`
 * decoded, as a body read here is (413), or a 400 for data that is not its coding. Text is as it is.
 */
export function decodedAsSent(
  bytes: Buffer | string,
  header: string | undefined,
  maxBytes: number,
): Buffer | string {
  if (typeof bytes === 'string') return bytes; // text: the host's to have decoded
  const coding = knownCoding(header);
  let decode: 'gunzipSync' | 'inflateSync' | 'inflateRawSync';
  if (coding === 'gzip' && bytes[0] === 0x1f && bytes[1] === 0x8b) decode = 'gunzipSync';
  else if (coding === 'deflate' && zlibWrapped(bytes)) decode = 'inflateSync';
  else if (coding === 'deflate' && !isUtf8(bytes)) decode = 'inflateRawSync';
  else return bytes;
  // Loaded here, as decoderFor loads it: most endpoints never see a compressed body.
  const zlib = process.getBuiltinModule('node:zlib');
  let decoded: { buffer: Buffer; engine: { bytesWritten: number } };
  try {
    decoded = zlib[decode](bytes, { maxOutputLength: maxBytes, info: true }) as unknown as typeof decoded;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw bodyTooLarge(maxBytes, 'Decompressed request body');
    }
    throw new EndpointError('SEG_BAD_ENCODING', `Request body is not valid ${coding} data`);
  }
  const after = bytesAfter(bytes, decoded.engine.bytesWritten, header);
  if (after !== undefined) throw after;
  return decoded.buffer;
}

/**
 * Bytes sent after the compressed data, refused: Node's inflate stops at the end of the deflate data and
 * leaves what follows unread (gunzip reads on, as the next member, and fails). Zeros are padding, which
 * gunzip reads past too. `taken`: what the decoder took in; `coding`: as the request named it.
 */
export function bytesAfter(data: Buffer, taken: number, coding: unknown): EndpointError | undefined {
  const rest = data.subarray(taken);
  if (rest.every((byte) => byte === 0)) return undefined;
  return new EndpointError(
    'SEG_BAD_ENCODING',
    `Request body holds ${rest.length} bytes after its ${coding} data`,
  );
}

/**
 * Whether deflate data opens with a zlib header (RFC 1950 §2.2): compression method 8, and the two bytes
 * a multiple of 31. Raw deflate opening so is a non-final stored block with padding bits set, which no
 * compressor writes.
 */
function zlibWrapped(data: Buffer): boolean {
  if (data.length < 2) return false;
  const method = data.readUInt8(0);
  return (method & 0x0f) === 8 && ((method << 8) | data.readUInt8(1)) % 31 === 0;
}
