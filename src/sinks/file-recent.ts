import { join } from 'node:path';
import { keyFingerprint } from '../auth.ts';
import { type EarlierEvent, EarlierEvents } from '../earlier-events.ts';
import { messageIdOf } from '../normalize.ts';
import { inSlices, type Steps } from '../slices.ts';
import { readAt, type StoreIo } from './file-io.ts';
import { inReadingOrder, lastTwoOfEach, type StoreFile, storeFile } from './file-names.ts';
import { ownStat } from './file-owner.ts';
import { COMMIT_MAX_BYTES } from './file-repair.ts';

// The events a store holds from just before this start, for the duplicate filter (earlier-events.ts). A
// crash loses the answers of at most the last two commits (one synced, its answers not yet written; one
// being written), each of at most COMMIT_MAX_BYTES: their events are in the last RECENT_BYTES of what
// each writer wrote. Segment retries them, and without this they would be stored again.
//
// Only lines known durable are read: an event remembered here and then lost would be answered 200 on
// its retry, and never stored. A process reads its own files, which no one else writes, whole, synced
// first (start-up repair syncs a writer's last two files, but not one it defers for want of room); the
// files of other writers (the other workers of --workers, writing while it reads) only up to the sizes
// its primary synced and found after its repair, before any worker wrote (`durable`): past them, a
// commit may not be synced yet, or be cut back and refused. Nor what follows a torn line or the first
// line holding a zero byte (a hole a power cut left), which repair sets aside.

// Lines parsed between looks at the clock (inSlices): a line of a few KB takes a few µs.
const LINES_A_STEP = 16;

/** The bytes read back from the end of each writer's (each worker's) files: its last two commits. */
export const RECENT_BYTES = 2 * COMMIT_MAX_BYTES;
/** The bytes read back in all, its own writer's first: what a start with many writers may spend. */
export const RECENT_TOTAL_BYTES = 2 * RECENT_BYTES;

const DAY_MS = 24 * 60 * 60 * 1000;

export interface RecentOptions {
  /** Events stored before this (ms) are of no use: the files of days that ended before it are not read. */
  readonly since: number;
  /** The writer this process is (K of `-wK`), or undefined for the one process: every file is its own. */
  readonly worker?: number | undefined;
  /** Other writers' files: the bytes of each known durable (by name); a file not named is not read. */
  readonly durable?: ReadonlyMap<string, number> | undefined;
  /** ms, for tests. */
  readonly now?: number | undefined;
}

/**
 * The events in the last RECENT_BYTES of each writer's files in `dir` (its newest day's, then the day
 * before's if that is not enough), RECENT_TOTAL_BYTES in all: this writer's own first, then the others'
 * newest first. A line that does not parse, or has no messageId, is passed over; so is a file that is
 * not the store's (not a regular file, another user's). Read while the endpoint serves: the lines are
 * parsed a slice at a time (~10 ms of parsing for 2 MiB, more on a cold start).
 */
export async function recentEvents(io: StoreIo, dir: string, options: RecentOptions): Promise<EarlierEvents> {
  const now = options.now ?? Date.now();
  const own = options.worker ?? -1;
  // A day that ended before `since` holds nothing worth remembering.
  const writers = [...(await lastTwoEach(io, dir, (file) => Date.parse(file.day) + DAY_MS > options.since))];
  const newest = (files: readonly StoreFile[]) => files[files.length - 1] as StoreFile;
  writers.sort(
    ([a, aFiles], [b, bFiles]) =>
      Number(b === own) - Number(a === own) || inReadingOrder(newest(bFiles), newest(aFiles)),
  );
  const events: EarlierEvent[] = [];
  let total = RECENT_TOTAL_BYTES;
  for (const [writer, files] of writers) {
    let budget = Math.min(RECENT_BYTES, total);
    for (const file of [...files].reverse()) {
      if (budget <= 0) break;
      const durable =
        options.worker === undefined || writer === own
          ? Number.POSITIVE_INFINITY
          : options.durable?.get(file.name);
      if (durable === undefined) continue;
      const text = await fileTail(io, join(dir, file.name), budget, durable);
      if (text === undefined) continue;
      const bytes = Buffer.byteLength(text);
      budget -= bytes;
      total -= bytes;
      await inSlices(eventsIn(text, now, events));
    }
  }
  return new EarlierEvents(events, keyFingerprint);
}

/**
 * The whole lines among the last `bytes` of `path`, up to `durable` bytes into it, and none from the
 * first that holds a zero byte (a hole a power cut left: repair sets it aside); undefined if it is none
 * of the store's files.
 */
async function fileTail(
  io: StoreIo,
  path: string,
  bytes: number,
  durable: number,
): Promise<string | undefined> {
  // As repair opens them: a symbolic link named like a store file is none of the store's (it writes none),
  // and what it leads to (another endpoint's store?) must not have this one's events answered as copies.
  const fd = await io.open(path, 'r+').catch(() => undefined);
  if (fd === undefined) return undefined;
  try {
    const own = durable === Number.POSITIVE_INFINITY;
    const size = Math.min((await ownStat(io, fd, path)).size, durable);
    // Its own file: what a repair deferred for want of room left unsynced is made durable before it counts.
    if (own) await io.fdatasync(fd);
    // One byte more than `bytes`, before them: whether they begin with a whole line.
    const from = Math.max(0, size - bytes - 1);
    const tail = Buffer.alloc(size - from);
    await readAt(io, fd, tail, from);
    // A first line cut by where the read starts, and a last one a crash left without its end, are no
    // events: whole lines only.
    const start = from === 0 ? 0 : tail.indexOf(0x0a) + 1;
    const zero = tail.indexOf(0, start);
    return tail.toString('utf8', start, tail.lastIndexOf(0x0a, zero === -1 ? tail.length : zero) + 1);
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

/**
 * What the primary of --workers found of the store after its repair, before any worker writes: the size
 * of each writer's last two files, as text for its workers' environment (a few lines of JSON).
 */
export async function durableSizes(io: StoreIo, dir: string): Promise<string> {
  const sizes: Record<string, number> = {};
  for (const files of (await lastTwoEach(io, dir)).values()) {
    for (const file of files) {
      const size = await syncedSize(io, join(dir, file.name));
      if (size !== undefined) sizes[file.name] = size;
    }
  }
  return JSON.stringify(sizes);
}

/**
 * The size of the store file `path`, made durable first (a repair deferred for want of room synced
 * nothing); undefined if it is none of the store's files, or cannot be synced.
 */
async function syncedSize(io: StoreIo, path: string): Promise<number | undefined> {
  const fd = await io.open(path, 'r+').catch(() => undefined);
  if (fd === undefined) return undefined;
  try {
    const { size } = await ownStat(io, fd, path);
    await io.fdatasync(fd);
    return size;
  } catch {
    return undefined;
  } finally {
    await io.close(fd).catch(() => {});
  }
}

/** Each writer's last two store files in `dir` of those `keep` accepts, in reading order. */
async function lastTwoEach(
  io: StoreIo,
  dir: string,
  keep: (file: StoreFile) => boolean = () => true,
): Promise<Map<number, StoreFile[]>> {
  const files = (await io.readdir(dir)).map(storeFile).filter((file) => file !== undefined && keep(file));
  return lastTwoOfEach(files as StoreFile[]);
}

/** The variable in which the primary of --workers tells its workers durableSizes. */
export const DURABLE_VARIABLE = 'SEGMENT_ENDPOINT_WORKER_DURABLE';

/** The sizes durableSizes gave, read back; none (every other writer's file passed over) if unreadable. */
export function durableSizesOf(text: string | undefined): Map<string, number> {
  try {
    const sizes = JSON.parse(text ?? '{}') as Record<string, unknown>;
    return new Map(Object.entries(sizes).filter((e): e is [string, number] => Number.isSafeInteger(e[1])));
  } catch {
    return new Map();
  }
}
