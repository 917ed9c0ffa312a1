import { createHmac } from 'node:crypto';
import { sameDigest } from './auth.ts';
import { EndpointError } from './errors.ts';

// Segment's Webhooks destinations sign what they send: `X-Signature` is the hex HMAC-SHA1 of the body
// under a secret shared with the receiver (for a batch, a JSON array, of its first element).

/** What a signature covers: the body's text, or, for a JSON array, its first element serialised. */
export function signedPayload(value: unknown, text: string | undefined): string {
  if (Array.isArray(value)) return JSON.stringify(value[0] ?? null);
  return text ?? JSON.stringify(value);
}

/** Throws the 401 to answer unless `header` is the HMAC-SHA1 of `payload` under `secret`. */
export function verifySignature(
  header: string | string[] | undefined,
  secret: string,
  payload: string,
): void {
  if (header === undefined || header === '') throw new EndpointError('SEG_SIGNATURE_MISSING');
  const expected = createHmac('sha1', secret).update(payload).digest('hex');
  // Compared in constant time, whatever the header holds (a repeated header is a mismatch).
  const given = typeof header === 'string' ? header.trim().toLowerCase() : '';
  if (!sameDigest(given, expected)) throw new EndpointError('SEG_SIGNATURE_INVALID');
}
