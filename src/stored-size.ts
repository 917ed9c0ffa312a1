import { storedTooLarge } from './refusals.ts';

// What the events of one request take stored, held to a budget (2 × maxBodyBytes) whether they came as
// one event or a batch (acceptBatch measures a batch's): the stored line is the event and its settings
// written as JSON again, which can be longer than they were sent.

/** What a stored line holds besides the event and the settings: receivedAt, source and the field names. */
export const LINE_OVERHEAD = 96; // bytes

/**
 * How many times longer than its text JSON can write again: `9e20` (4 characters) is 21 digits. Nothing
 * else grows: whitespace goes, escapes stay or shrink, and any other character writes as the UTF-8 bytes
 * it came in, at most 3 for each UTF-16 unit of the text.
 */
const MAX_GROWTH = 21 / 4;

/** The `type` a /v1/{type} path adds to an event that has none (`"type":"identify",`), and more. */
const ADDED = 32; // bytes

const settingsSizes = new WeakMap<object, number>();

/** The settings as the store writes them with each event, in UTF-8 bytes; measured once an object. */
export function settingsBytes(settings: object): number {
  let bytes = settingsSizes.get(settings);
  if (bytes === undefined) {
    bytes = Buffer.byteLength(JSON.stringify(settings));
    settingsSizes.set(settings, bytes);
  }
  return bytes;
}

/**
 * Throws the 413 a request past `budget` gets for one event that, stored with its settings, would take
 * more: 16 KB of `9e20`s write as 66 KB. Measured only when its text (`undefined`: a framework parsed
 * it) could write past the budget, which the events of the bench never come near.
 */
export function checkStoredSize(event: unknown, text: string | undefined, settings: object, budget: number) {
  const settingsSize = settingsBytes(settings);
  const fixed = settingsSize + LINE_OVERHEAD;
  if (text !== undefined && text.length * MAX_GROWTH + ADDED + fixed <= budget) return;
  const total = Buffer.byteLength(JSON.stringify(event) ?? '') + fixed;
  if (total <= budget) return;
  throw storedTooLarge({
    budget,
    total,
    events: 1,
    settingsBytes: settingsSize,
    contextBytes: 0,
    integrationsBytes: 0,
  });
}
