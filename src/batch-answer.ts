import type { EventResult } from './batch.ts';
import { refusal } from './refusals.ts';

// A batch's one answer, from what became of each of its events (acceptBatch).

// Refused events named in the answer, at most, and the characters their list may take past the first;
// the count says how many in all.
const MAX_LISTED = 100;
const MAX_LISTED_CHARS = 2_000;

/**
 * A batch's answer. All accepted: 200, or 202 when every event was taken to be processed later (as its
 * handlers answered each). Otherwise the sender may only retry the whole request, so:
 * if any event failed for a reason worth retrying (5xx but 501, 429), a 503, and the retry reprocesses
 * only those (the accepted ones are answered as duplicates by their messageId); if every failure is
 * final (4xx, 501), a 400, which Segment does not retry. The message counts and lists the refused.
 */
export function batchAnswer(results: readonly EventResult[]): EventResult {
  const refused: number[] = [];
  let retryable = 0;
  results.forEach((r, index) => {
    if (r.error === undefined) return;
    refused.push(index);
    if (r.status === 429 || (r.status >= 500 && r.status !== 501)) retryable++;
  });
  if (refused.length === 0) return results.every((r) => r.status === 202) ? LATER : ACCEPTED;
  const named: string[] = [];
  let chars = 0;
  for (const index of refused) {
    const r = results[index] as EventResult;
    const one = `#${index}: ${r.status} ${r.error?.message ?? ''}`.trim();
    chars += one.length + 2;
    if (named.length === MAX_LISTED || (named.length > 0 && chars > MAX_LISTED_CHARS)) break;
    named.push(one);
  }
  const listed = named.join('; ');
  const more = refused.length > named.length ? `; and ${refused.length - named.length} more` : '';
  const summary = `${results.length - refused.length} of ${results.length} events accepted`;
  const error =
    retryable > 0
      ? refusal('SEG_BATCH_RETRY', `${summary}; ${retryable} can be retried: ${listed}${more}`)
      : refusal('SEG_BATCH_REFUSED', `${summary}; refused: ${listed}${more}`);
  return { status: error.status, error };
}

const ACCEPTED: EventResult = Object.freeze({ status: 200 });
const LATER: EventResult = Object.freeze({ status: 202 });
