import type { AuthDecision } from './auth.ts';
import { isSignatureSecrets } from './signature.ts';
import { EVENT_TYPES } from './types.ts';

// Reading what a partner's authenticate answered (credentials.ts): a decision, or a bug in it.

/**
 * What an authenticator answered, read strictly: anything outside `AuthDecision` (a missing return, a
 * misspelt string, an array) is a bug in it, thrown as one (a 500, retried) rather than taken as a pass.
 * The value is described, not shown: an authenticator may hand back the key or a record that holds it.
 * An object is read once, into a frozen decision of the endpoint's own: what was checked is what is used,
 * though the partner's object (or a list in it) changes later or answers a getter twice.
 */
export function checkDecision(decision: unknown): AuthDecision {
  if (decision === 'allow' || decision === 'unknown' || decision === 'forbidden') return decision;
  if (typeof decision === 'boolean') return decision;
  if (typeof decision === 'object' && decision !== null && !Array.isArray(decision)) {
    const read = (name: string) => unpolluted(decision, name);
    const [allow, signatureSecret, rate] = [
      copied(read('allow')),
      copied(read('signatureSecret')),
      read('rate'),
    ];
    if (
      onlyDecisionKeys(decision) &&
      (allow === undefined || (Array.isArray(allow) && allow.every((t) => EVENT_TYPES.includes(t)))) &&
      (signatureSecret === undefined || isSignatureSecrets(signatureSecret)) &&
      (rate === undefined || (typeof rate === 'number' && rate >= 0 && rate <= 1_000_000))
    ) {
      return Object.freeze({
        ...(allow !== undefined && { allow }),
        ...(signatureSecret !== undefined && { signatureSecret }),
        ...(rate !== undefined && { rate }),
      }) as AuthDecision;
    }
  }
  const what =
    decision === null || decision === undefined ? String(decision) : `a value of type ${kind(decision)}`;
  throw new Error(
    `authenticate answered ${what}, not a decision: 'allow', true, { allow, signatureSecret, rate }, 'unknown', false or 'forbidden'`,
  );
}

/**
 * `object[name]`, its own or inherited (a class's getter takes effect), but not one a host's polluted
 * Object.prototype lists: that would be every object's (a shared secret replaced for every key).
 */
export const unpolluted = (object: object, name: string): unknown =>
  Object.hasOwn(object, name) || !Object.hasOwn(Object.prototype, name)
    ? (object as Record<string, unknown>)[name]
    : undefined;

/** A list copied (each element read once), anything else as it is. */
const copied = (value: unknown): unknown => (Array.isArray(value) ? Object.freeze(Array.from(value)) : value);

const kind = (value: unknown): string => (Array.isArray(value) ? 'array' : typeof value);

/** Whether a decision holds nothing but allow, signatureSecret and rate: a misspelt key is a bug. */
function onlyDecisionKeys(decision: object): boolean {
  for (const key in decision) {
    if (key === 'allow' || key === 'signatureSecret' || key === 'rate') continue;
    // Inherited keys count, as they take effect; but not one a host's polluted Object.prototype lists.
    if (!Object.hasOwn(decision, key) && Object.hasOwn(Object.prototype, key)) continue;
    return false;
  }
  return true;
}
