import { createHmac } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { type AuthDecision, sameDigest } from './auth.ts';
import { EndpointError } from './errors.ts';
import { settingsSent } from './settings.ts';

// Segment's Webhooks destinations sign what they send with a secret shared with the receiver: a hex
// HMAC-SHA1. What is signed depends on the header (segmentio/action-destinations,
// packages/destination-actions/src/destinations/webhook/index.ts, `extendRequest`, commit 17e1d2d,
// "Add X-Segment-Signature header toggle and fix batch signing"):
// - `X-Signature` (legacy, the default): JSON.stringify(payload[0].data) for a batch, so for a JSON array
//   body only its first element is signed; for one event, the body itself.
// - `X-Segment-Signature` ("Use X-Segment-Signature Header"): JSON.stringify of what is sent, the whole
//   array for a batch.
// A signature that covers only the first of several events lets any number of unsigned events ride behind
// one replayed signed event, so that one is refused unless the operator opts in (`signatureLegacyBatch`).

/**
 * A signing secret, or several: a signature under any of them is accepted. Several are for rotating one
 * (Segment signs with the new secret from the moment the customer saves it, and a request refused 401 is
 * not sent again): the new one is added beside the old, the old taken out once Segment has the new.
 */
export type SignatureSecrets = string | readonly string[];

/** The most secrets one key (or the shared setting) may have: a wrong signature is checked under each. */
export const MAX_SIGNATURE_SECRETS = 4;

/**
 * The secrets a request must be signed with, if any: its key's own (`decision`), else the shared ones.
 * Its own only: one a host's polluted Object.prototype lists is not a key's.
 */
export const secretFor = (
  decision: AuthDecision,
  shared: SignatureSecrets | undefined,
): SignatureSecrets | undefined =>
  (typeof decision === 'object' && Object.hasOwn(decision, 'signatureSecret')
    ? decision.signatureSecret
    : undefined) ?? shared;

/**
 * Whether `value` is one secret or a list of 1 to MAX_SIGNATURE_SECRETS of them, each a string with
 * something besides white space (a blank line left in a file of secrets would otherwise be a secret
 * anyone could sign with). A list is read once: check a copy of the caller's, then keep that copy.
 */
export function isSignatureSecrets(value: unknown): value is SignatureSecrets {
  if (typeof value === 'string') return NOT_BLANK.test(value);
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.length <= MAX_SIGNATURE_SECRETS &&
    value.every((secret) => typeof secret === 'string' && NOT_BLANK.test(secret))
  );
}

const NOT_BLANK = /\S/;

/**
 * Throws the 401 to answer, before the settings are decoded or the body read, when a request that must
 * be signed carries settings (settings are stored with the event, and no signature covers a header;
 * Segment's signing Webhooks destinations send none, its partner destinations, which do, sign nothing),
 * or no signature header (an unsigned flood costs no body reads).
 */
export function refuseUnsigned(headers: IncomingHttpHeaders): void {
  if (settingsSent(headers['x-segment-settings'])) throw new EndpointError('SEG_SIGNATURE_SETTINGS');
  const segment = digestOf(headers['x-segment-signature']);
  if (segment === undefined && digestOf(headers['x-signature']) === undefined)
    throw new EndpointError('SEG_SIGNATURE_MISSING');
}

/**
 * Throws the 401 to answer unless a signature header under one of `secrets` covers the whole body (one
 * without any, or with settings, was refused before it was read: refuseUnsigned).
 */
export function verifySignature(
  headers: IncomingHttpHeaders,
  secrets: SignatureSecrets,
  value: unknown,
  text: string | undefined,
  legacyBatch: boolean,
): void {
  const segment = digestOf(headers['x-segment-signature']);
  const legacy = digestOf(headers['x-signature']);
  if (segment === undefined && legacy === undefined) throw new EndpointError('SEG_SIGNATURE_MISSING');
  // The body as received; a framework that parsed it first leaves only the value to serialise.
  const body = text ?? JSON.stringify(value);
  const each = typeof secrets === 'string' ? [secrets] : secrets;
  for (const secret of each) {
    const whole = hmac(secret, body);
    // Both compared, in constant time: either header covering the whole body suffices.
    const segmentMatches = segment !== undefined && sameDigest(segment, whole);
    const legacyMatches = legacy !== undefined && sameDigest(legacy, whole);
    if (segmentMatches || legacyMatches) return;
  }
  // Only then Segment's legacy batch signing: a body signed whole under any secret is never refused as
  // partially signed under another.
  if (legacy !== undefined && Array.isArray(value) && value.length > 0) {
    const first = JSON.stringify(value[0]);
    if (each.some((secret) => sameDigest(legacy, hmac(secret, first)))) {
      // One event signed covers all that is stored; several are covered only by the operator's opt-in.
      if (value.length === 1 || legacyBatch) return;
      throw new EndpointError('SEG_SIGNATURE_PARTIAL');
    }
  }
  throw new EndpointError('SEG_SIGNATURE_INVALID');
}

/** The header's digest as compared, or undefined when absent or empty (a repeated header is a mismatch). */
function digestOf(header: string | string[] | undefined): string | undefined {
  if (header === undefined || header === '') return undefined;
  return typeof header === 'string' ? header.trim().toLowerCase() : '';
}

function hmac(secret: string, payload: string): string {
  return createHmac('sha1', secret).update(payload).digest('hex');
}
