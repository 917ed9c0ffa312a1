import { digest128 } from './digest.ts';

// The keys and digests the in-memory duplicate filter (idempotency.ts) finds its entries by.

/** A digest as a Map key: the copies waiting for an event are found the way its mark is. */
export function digestText(digest: Uint32Array): string {
  return `${digest[0]}.${digest[1]}.${digest[2]}.${digest[3]}`;
}

/** The key under which an event is remembered: its API key and messageId. */
export function eventKey(apiKey: string, messageId: string): string {
  return `${apiKey}\n${messageId}`;
}

// The digest of the key being looked up or remembered, in one scratch array rather than a typed array
// per event. An event whose handler answers synchronously is looked up and remembered one right after the
// other (peek, completeEvent): the digest of the first is still there for the second.
const scratch = new Uint32Array(4);
let scratchApiKey: string | undefined;
let scratchMessageId: string | undefined;

export function digestOf(key: string): Uint32Array {
  scratchApiKey = undefined; // the scratch no longer holds an event's digest
  return digest128(key, scratch);
}

export function digestOfEvent(apiKey: string, messageId: string): Uint32Array {
  if (messageId !== scratchMessageId || apiKey !== scratchApiKey) {
    digest128(apiKey, scratch, messageId);
    scratchApiKey = apiKey;
    scratchMessageId = messageId;
  }
  return scratch;
}
