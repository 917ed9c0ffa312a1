import type { Transform } from 'node:stream';
import { createGunzip, createInflate } from 'node:zlib';
import { EndpointError } from './errors.ts';

// Content-Encoding of a request body (RFC 9110 §8.4): some SDKs gzip their events. The limit on the
// body applies to what comes out of the decoder too (see BodyRead.decode).

const CODINGS: Readonly<Record<string, () => Transform>> = {
  gzip: createGunzip,
  'x-gzip': createGunzip,
  deflate: createInflate,
};

/**
 * The decoder for a Content-Encoding header: `undefined` for none or `identity`; 415 for a coding this
 * endpoint does not read (br, zstd, or a list of several). With `check`, only validates.
 */
export function contentDecoder(header: string | undefined, check: boolean): Transform | undefined {
  if (header === undefined) return undefined;
  const coding = header.trim().toLowerCase();
  if (coding === '' || coding === 'identity') return undefined;
  const make = Object.hasOwn(CODINGS, coding) ? CODINGS[coding] : undefined;
  if (make === undefined) {
    throw new EndpointError(
      'SEG_UNSUPPORTED_ENCODING',
      `Content-Encoding ${JSON.stringify(header.slice(0, 64))} is not supported: send gzip, deflate or none`,
    );
  }
  return check ? undefined : make();
}
