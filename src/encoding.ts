import type { Transform } from 'node:stream';
import { EndpointError } from './errors.ts';

// Content-Encoding of a request body (RFC 9110 §8.4): some SDKs gzip their events. The limit on the
// body applies to what comes out of the decoder too (see BodyRead.decode). node:zlib is loaded on the
// first compressed body only: most endpoints never see one, and it costs resident memory (bench/README.md).

export type Coding = 'gzip' | 'deflate';

const CODINGS: Readonly<Record<string, Coding>> = { gzip: 'gzip', 'x-gzip': 'gzip', deflate: 'deflate' };

/**
 * The coding a Content-Encoding header names: `undefined` for none or `identity`; 415 for a coding
 * this endpoint does not read (br, zstd, or a list of several).
 */
export function codingOf(header: string | undefined): Coding | undefined {
  if (header === undefined) return undefined;
  const coding = header.trim().toLowerCase();
  if (NOT_CODED.has(coding)) return undefined;
  const known = Object.hasOwn(CODINGS, coding) ? CODINGS[coding] : undefined;
  if (known === undefined) {
    throw new EndpointError(
      'SEG_UNSUPPORTED_ENCODING',
      `Content-Encoding ${JSON.stringify(header.slice(0, 64))} is not supported: send gzip, deflate or none`,
    );
  }
  return known;
}

/** What a Content-Encoding header says when the body is not coded. */
const NOT_CODED: ReadonlySet<string> = new Set(['', 'identity']);

/** Whether a Content-Encoding header says the body is not coded: empty, or `identity`. */
export const isIdentity = (header: string): boolean => NOT_CODED.has(header.trim().toLowerCase());

/** A decoder for `coding`. */
export async function decoderFor(coding: Coding): Promise<Transform> {
  const zlib = await import('node:zlib');
  return coding === 'gzip' ? zlib.createGunzip() : zlib.createInflate();
}
