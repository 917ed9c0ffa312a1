import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { keyFingerprint } from '../auth.ts';
import { type EarlierEvent, EarlierEvents } from '../earlier-events.ts';
import { messageIdOf } from '../normalize.ts';
import { inSlices, type Steps } from '../slices.ts';
import { type FileStat, readAt, type StoreIo } from './file-io.ts';
import { DAY_MS, inReadingOrder, lastTwoOfEach, type StoreFile, storeFile } from './file-names.ts';
import { ownStat } from './file-owner.ts';
import { COMMIT_MAX_BYTES } from './file-repair.ts';

// The events a store holds from just before this start, for the duplicate filter (earlier-events.ts). A
// crash loses the answers of at most the last two commits (one synced, its answers not yet all written;
// one being written), each of at most COMMIT_MAX_BYTES: their events are in the last RECENT_BYTES of
// what each writer wrote. Segment retries them, and without this they would be stored again.
//
// Only lines known durable are read: an event remembered here and then lost would be answered 200 on
// its retry, and never stored. So a process reads its own files (with --workers, a worker's `-wK`),
// synced first, and only those start-up repair has left clean: a file that ends inside a line, or holds
// a zero byte in its last commit (a torn write, a hole a power cut left), is one whose repair was
// deferred for want of room, and what it holds there is set aside later, not stored. Of the other
// workers' files, being written meanwhile (a commit there may be unsynced, or cut back and refused), a
// worker reads only what they held before any worker started (`MeasuredFiles`): a retry of the whole tree's
// last events reaches any worker.

// Lines parsed between looks at the clock (inSlices): a line of a few KB takes a few µs.
const LINES_A_STEP = 16;

/** The bytes read back from the end of each writer's files: its last two commits. */
export const RECENT_BYTES = 2 * COMMIT_MAX_BYTES;
/** The bytes read back in all by the one process, which has every writer's files as its own. */
export const RECENT_TOTAL_BYTES = 2 * RECENT_BYTES;
/** The other writers a worker reads back besides itself, at most (of those measured): 16 MiB, ~0.2 s. */
export const OTHER_WRITERS_MAX = 8;

export interface RecentOptions {
  /** Events stored before this (ms) are of no use: the files of days that ended before it are not read. */
  readonly since: number;
  /** The worker this process is (K of `-wK`), or undefined for the one process: every file is its own. */
  readonly worker?: number | undefined;
  /** A worker's: the other writers' files and their sizes before any worker started (`measureFiles`). */
  readonly others?: MeasuredFiles | undefined;
  /** ms, for tests. */
  readonly now?: number | undefined;
}

/**
 * The events in the last RECENT_BYTES of each of this process's writers' files in `dir` (its newest day's,
 * then the day before's if that is not enough), RECENT_TOTAL_BYTES in all, the newest writer first (a
 * worker: its own, then RECENT_BYTES more for each of OTHER_WRITERS_MAX others in `others` at most). A
 * line that does not parse, or has no messageId, is passed over; so is a file that is not the store's (not
 * a regular file, another user's). Read while the endpoint serves: the lines are parsed a slice at a time
 * (2 MiB: ~10 ms warm, ~28 in a fresh process; README.md).
 */
export async function recentEvents(io: StoreIo, dir: string, options: RecentOptions): Promise<EarlierEvents> {
  const now = options.now ?? Date.now();
  const { worker, others } = options;
  const own = (file: StoreFile) => worker === undefined || file.worker === worker;
  // A day that ended before `since`: nothing to remember.
  const inWindow = (file: StoreFile) => Date.parse(file.day) + DAY_MS > options.since;
  const read = (file: StoreFile) => (own(file) || others?.has(file.name) === true) && inWindow(file);
  const files = (await io.readdir(dir)).map(storeFile).filter((file) => file !== undefined && read(file));
  const newest = (writer: readonly StoreFile[]) => writer[writer.length - 1] as StoreFile;
  const writers = [...lastTwoOfEach(files as StoreFile[]).values()];
  writers.sort((a, b) => inReadingOrder(newest(b), newest(a)));
  const events: EarlierEvent[] = [];
  let total = worker === undefined ? RECENT_TOTAL_BYTES : RECENT_BYTES;
  let othersLeft = OTHER_WRITERS_MAX;
  for (const writer of writers) {
    if (!own(newest(writer))) {
      if (othersLeft === 0) continue;
      othersLeft--;
      total += RECENT_BYTES;
    }
    let budget = Math.min(RECENT_BYTES, total);
    for (const file of [...writer].reverse()) {
      if (budget <= 0) break;
      // Its own files to their current end (its own repair has run; a predecessor's events since the tree
      // started are its to remember), the others' only as measured.
      const measured = own(file) ? undefined : others?.get(file.name);
      const text = await cleanTail(io, join(dir, file.name), budget, measured);
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
 * The whole lines among the last `bytes` of the store file `path` (of its first `measured.size` bytes,
 * when given), once synced; undefined if it is none of the store's files, cannot be synced, is not the
 * file measured (shorter, another, other bytes before the size), or is not as start-up repair leaves a
 * file (see above).
 */
async function cleanTail(
  io: StoreIo,
  path: string,
  bytes: number,
  measured?: Measured,
): Promise<string | undefined> {
  // As repair opens them: a symbolic link named like a store file is none of the store's (it writes none),
  // and what it leads to (another endpoint's store?) must not have this one's events answered as copies.
  // Not the store's file, or gone meanwhile: nothing of it is remembered.
  return ofFile(io, path, 'r+', async (_, fd, stat) => {
    if (measured !== undefined && !stillMeasured(stat, measured)) return undefined;
    const size = measured?.size ?? stat.size;
    await io.fdatasync(fd);
    // One byte before the lines read (whether they begin with a whole line), and at least the last commit.
    const from = Math.max(0, size - Math.max(bytes, COMMIT_MAX_BYTES) - 1);
    const tail = Buffer.alloc(size - from);
    await readAt(io, fd, tail, from);
    if (tail.length > 0 && (tail[tail.length - 1] !== 0x0a || tail.includes(0))) return undefined;
    if (
      measured !== undefined &&
      digestOf(tail.subarray(-Math.min(DIGEST_BYTES, size))) !== measured.digest
    ) {
      return undefined; // the same file cut (copytruncate) and written again past its size
    }
    const first = Math.max(0, tail.length - bytes - 1);
    const start = from === 0 && first === 0 ? 0 : tail.indexOf(0x0a, first) + 1;
    return tail.toString('utf8', start);
  });
}

/**
 * Whether the file of `stat` may still hold the lines `measured`: the same file, not cut below its size.
 * Another at its name (a rotation: moved away and made again), or one cut, may hold a commit there that is
 * yet to be cut back and refused. (The same file cut in place and written again is told by the digest.)
 */
const stillMeasured = (stat: FileStat, measured: Measured): boolean =>
  stat.size >= measured.size && String(stat.dev) === measured.dev && String(stat.ino) === measured.ino;

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

/** A store file as the primary measured it: its size, which file it was, and a digest of its last bytes. */
export interface Measured {
  readonly size: number;
  readonly dev: string; // as fstat gives them, in decimal: an inode past 2^53 compares as text
  readonly ino: string;
  readonly digest: string;
}

/** Store files by name, as they were before any worker started: what each worker may read of them. */
export type MeasuredFiles = ReadonlyMap<string, Measured>;

/** The bytes before a measured size whose digest tells the lines measured from others written since. */
const DIGEST_BYTES = 4096;
const digestOf = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex').slice(0, 24);

/** The variable that hands the workers of --workers `measureFiles`' text. */
export const MEASURED_FILES_VARIABLE = 'SEGMENT_ENDPOINT_MEASURED_FILES';

/**
 * Each writer's last two files in `dir` as `name:size:dev:inode:digest` separated by `/` (no store file's
 * name holds either), measured by the primary once it has repaired them and before any worker starts: no
 * later commit can cut a file below its size (a cut-back returns to where its commit began). Only an
 * operator can: a file rotated (moved away and made again: another inode) or cut in place (copytruncate:
 * other bytes before its size, the digest). Those in `deferred` (repair left to their writer for want of
 * room, which may cut them) are left out. Only the OTHER_WRITERS_MAX + 1 writers written to last (a worker
 * reads that many others besides itself): a crash's, not an earlier, larger --workers run's; and the
 * variable stays short (an execve refuses one past 128 KiB, E2BIG: no worker would start).
 */
export async function measureFiles(
  io: StoreIo,
  dir: string,
  deferred: ReadonlyMap<string, number>,
): Promise<string> {
  const files = (await io.readdir(dir)).map(storeFile).filter((file) => file !== undefined) as StoreFile[];
  const written = new Map<readonly StoreFile[], number>();
  for (const writer of lastTwoOfEach(files).values()) {
    const times = await Promise.all(writer.map(({ name }) => ofFile(io, join(dir, name), 'r', lastWrite)));
    written.set(writer, Math.max(-1, ...times.map((time) => time ?? -1)));
  }
  const lastWritten = [...written.keys()].sort((a, b) => (written.get(b) ?? 0) - (written.get(a) ?? 0));
  const measured: string[] = [];
  for (const writer of lastWritten.slice(0, OTHER_WRITERS_MAX + 1)) {
    for (const { name } of writer) {
      const path = join(dir, name);
      if (deferred.has(path)) continue;
      const file = await ofFile(io, path, 'r', measure);
      if (file !== undefined) measured.push(`${name}:${file.size}:${file.dev}:${file.ino}:${file.digest}`);
    }
  }
  return measured.join('/');
}

/** `measureFiles`' text read back; what is not of its form is passed over (nothing of it is read). */
export function parseMeasuredFiles(text: string | undefined): MeasuredFiles {
  const files = new Map<string, Measured>();
  for (const part of text?.split('/') ?? []) {
    const match = /^([^:]+):(\d{1,15}):(\d{1,24}):(\d{1,24}):([0-9a-f]{24})$/.exec(part);
    const [, name = '', size = '', dev = '', ino = '', digest = ''] = match ?? [];
    if (match !== null && storeFile(name) !== undefined)
      files.set(name, { size: Number(size), dev, ino, digest });
  }
  return files;
}

const lastWrite = async (_io: StoreIo, _fd: number, stat: FileStat) => stat.mtimeMs ?? 0;

/** What `measureFiles` says of a file: its size, which file it is, the digest of its last bytes. */
async function measure(io: StoreIo, fd: number, stat: FileStat): Promise<Measured> {
  const last = Buffer.alloc(Math.min(DIGEST_BYTES, stat.size));
  await readAt(io, fd, last, stat.size - last.length);
  return { size: stat.size, dev: String(stat.dev), ino: String(stat.ino), digest: digestOf(last) };
}

/**
 * `look` at the store file `path`, opened with `flags`; undefined if it is none of the store's files, is
 * gone, or a step of `look` failed.
 */
async function ofFile<T>(
  io: StoreIo,
  path: string,
  flags: 'r' | 'r+',
  look: (io: StoreIo, fd: number, stat: FileStat) => Promise<T | undefined>,
): Promise<T | undefined> {
  const fd = await io.open(path, flags).catch(() => undefined);
  if (fd === undefined) return undefined;
  try {
    return await look(io, fd, await ownStat(io, fd, path));
  } catch {
    return undefined;
  } finally {
    await io.close(fd).catch(() => {});
  }
}
