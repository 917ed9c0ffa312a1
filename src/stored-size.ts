import { storedTooLarge } from './refusals.ts';
import { type Settings, writtenSettings } from './settings.ts';

// What the events of one request take stored, held to a budget (storedBudget) whether they came as one
// event or a batch (acceptBatch measures a batch's): the stored line is the event and its settings
// written as JSON again, which can be longer than they were sent.

/** What a stored line holds besides the event and the settings: receivedAt, source and the field names. */
const LINE_OVERHEAD = 96; // bytes

/** What the events of one request may take stored, in UTF-8 bytes: twice the largest body. */
export const storedBudget = (maxBodyBytes: number): number => 2 * maxBodyBytes;

/** The bytes one event's stored line takes, its event and settings being `eventBytes` and `settingsBytes`. */
export const lineBytes = (eventBytes: number, settingsBytes: number): number =>
  eventBytes + settingsBytes + LINE_OVERHEAD;

/**
 * How many times longer than its text an event can write as JSON again: a lone surrogate in a string a
 * host hands over is written as a 6-character escape (`\udc00`), and `9e20` (4 characters) as 21 digits.
 * Nothing else grows: whitespace goes, other escapes stay or shrink, and any other character writes as
 * the UTF-8 bytes it came in, at most 3 for each UTF-16 unit of the text.
 */
const MAX_GROWTH = 6;

/** The `type` a /v1/{type} path adds to an event that has none (`"type":"identify",`), and more. */
const ADDED = 32; // bytes

/**
 * Throws the 413 a request past `budget` gets for one event that, stored with its settings, would take
 * more: 16 KB of `9e20`s write as 66 KB. Measured whenever there is no text (a framework parsed the
 * body), else only when the text could write past the budget, which the events of the bench never do.
 */
export function checkStoredSize(
  event: unknown,
  text: string | undefined,
  settings: Settings,
  budget: number,
): void {
  const settingsSize = writtenSettings(settings).bytes;
  if (text !== undefined && lineBytes(text.length * MAX_GROWTH + ADDED, settingsSize) <= budget) return;
  const total = lineBytes(Buffer.byteLength(JSON.stringify(event) ?? ''), settingsSize);
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
