import { join } from 'node:path';
import { keyFingerprint } from '../auth.ts';
import { type EarlierEvent, EarlierEvents } from '../earlier-events.ts';
import { messageIdOf } from '../normalize.ts';
import { inSlices, type Steps } from '../slices.ts';
import { readAt, type StoreIo } from './file-io.ts';
import { inReadingOrder, type StoreFile, storeFile } from './file-names.ts';
import { ownStat } from './file-owner.ts';
import { COMMIT_MAX_BYTES } from './file-repair.ts';

// The events a store holds from just before this start, for the duplicate filter (earlier-events.ts). A
// crash loses the answers of at most the last two commits (one synced, its answers not yet written; one
// being written), each of at most COMMIT_MAX_BYTES: their events are in the last RECENT_BYTES of what
// each writer wrote. Segment retries them, and without this they would be stored again.

// Lines parsed between looks at the clock (inSlices): a line of a few KB takes a few µs.
const LINES_A_STEP = 16;

/** The bytes read back from the end of each writer's (each worker's) files: its last two commits. */
export const RECENT_BYTES = 2 * COMMIT_MAX_BYTES;

/**
 * The events in the last RECENT_BYTES of each writer's files in `dir`, its newest day's first, then the
 * day before's if that is not enough. A line that does not parse, or has no messageId, is passed over;
 * so is a file that is not the store's (not a regular file, another user's). Read while the endpoint
 * serves: the lines are parsed a slice at a time (~10 ms of parsing for 2 MiB, more on a cold start).
 * `now`: ms, for tests.
 */
export async function recentEvents(io: StoreIo, dir: string, now = Date.now()): Promise<EarlierEvents> {
  const byWriter = new Map<number, StoreFile[]>();
  for (const name of await io.readdir(dir)) {
    const file = storeFile(name);
    if (file !== undefined) byWriter.set(file.worker, [...(byWriter.get(file.worker) ?? []), file]);
  }
  const events: EarlierEvent[] = [];
  for (const files of byWriter.values()) {
    let budget = RECENT_BYTES;
    for (const file of files.sort(inReadingOrder).reverse().slice(0, 2)) {
      const text = await fileTail(io, join(dir, file.name), budget);
      if (text === undefined) continue;
      budget -= Buffer.byteLength(text);
      await inSlices(eventsIn(text, now, events));
      if (budget <= 0) break;
    }
  }
  return new EarlierEvents(events, keyFingerprint);
}

/** The whole lines among the last `bytes` of `path`; undefined if it is none of the store's files. */
async function fileTail(io: StoreIo, path: string, bytes: number): Promise<string | undefined> {
  // As repair opens them: a symbolic link named like a store file is none of the store's (it writes none),
  // and what it leads to (another endpoint's store?) must not have this one's events answered as copies.
  const fd = await io.open(path, 'r+').catch(() => undefined);
  if (fd === undefined) return undefined;
  try {
    const { size } = await ownStat(io, fd, path);
    // One byte more than `bytes`, before them: whether they begin with a whole line.
    const from = Math.max(0, size - bytes - 1);
    const tail = Buffer.alloc(size - from);
    await readAt(io, fd, tail, from);
    // A first line cut by where the read starts, and a last one a crash left without its end, are no
    // events: whole lines only.
    const start = from === 0 ? 0 : tail.indexOf(0x0a) + 1;
    return tail.toString('utf8', start, tail.lastIndexOf(0x0a) + 1);
  } catch {
    return undefined; // not the store's file, or gone meanwhile: nothing of it is remembered
  } finally {
    await io.close(fd).catch(() => {});
  }
}

/** The events of the lines of `text` (StoredRecord's), appended to `into`, a few lines at a time. */
function* eventsIn(text: string, now: number, into: EarlierEvent[]): Steps<void> {
  let count = 0;
  for (const line of text.split('\n')) {
    if (++count % LINES_A_STEP === 0) yield;
    if (line === '') continue;
    let record: { receivedAt?: unknown; source?: unknown; event?: unknown } | null;
    try {
      record = JSON.parse(line);
    } catch {
      continue;
    }
    const messageId = messageIdOf(record?.event);
    const at = typeof record?.receivedAt === 'string' ? Date.parse(record.receivedAt) : Number.NaN;
    if (messageId === undefined || typeof record?.source !== 'string' || Number.isNaN(at)) continue;
    // A time ahead of this clock (another machine's, a clock set back) counts as now, not as later.
    into.push({ source: record.source, messageId, at: Math.min(at, now) });
  }
}
