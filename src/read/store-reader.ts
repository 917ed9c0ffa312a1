import { constants } from 'node:buffer';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeValue } from '../errors.ts';
import { listStoreFiles, type StoreFile } from '../sinks/file-names.ts';
import { COMMIT_MAX_BYTES, repairedAtStart } from '../sinks/file-repair.ts';
import { EVENT_TYPES } from '../types.ts';
import { Positions } from './checkpoint.ts';
import { FileLines, type Hole } from './lines.ts';
import { Line, type StoredLine } from './stored-line.ts';

export { CheckpointError } from './checkpoint.ts';
export { LineTooLongError } from './lines.ts';
export type { StoredLine } from './stored-line.ts';

/** A line holding a zero byte, at which the reading of its file stopped (see readStore). */
export interface StoreHole {
  /** The file's name in the store directory. */
  readonly file: string;
  /** Where the line holding it starts: the file is read up to there. */
  readonly offset: number;
  /** The bytes from there to the file's end, not read. */
  readonly bytes: number;
  /**
   * Whether the endpoint's next start sets them aside (to the file's `.torn`), the reading going on
   * from there: a power cut's hole in its writer's last commit. Otherwise nothing will: the file was
   * damaged, and its bytes from `offset` on are for someone to look at.
   */
  readonly setAsideAtStart: boolean;
}

export interface ReadStoreOptions {
  /**
   * After what is stored, keep waiting for new lines and new files (a new day's, a new worker's) until
   * `signal` aborts.
   * @default false
   */
  readonly follow?: boolean | undefined;
  /**
   * A checkpoint file: reading starts just past the last line its run did, and the position is saved
   * back to it (it is created if it does not exist). Without it, every file is read from its start.
   */
  readonly checkpoint?: string | undefined;
  /** Only events of these types (compared in lower case), e.g. `['track', 'identify']`. @default all */
  readonly types?: readonly string[] | undefined;
  /** Ends the reading (a follow, or a long first pass); the position is saved first. */
  readonly signal?: AbortSignal | undefined;
  /**
   * While following, how often the directory is looked at for new lines and new files (ms).
   * @default 200
   */
  readonly pollMs?: number | undefined;
  /**
   * The longest line read (bytes, its newline not counted): a longer one, finished or not, ends the
   * reading with a LineTooLongError naming its file and offset, rather than being held in memory. The
   * endpoint's lines are at most 2 × its --max-body-bytes (a longer one is refused, not stored).
   * @default 67108864 (64 MiB)
   */
  readonly maxLineBytes?: number | undefined;
  /** Told once of each line holding a zero byte that the reading of a file stops at (StoreHole). */
  readonly onHole?: ((hole: StoreHole) => void) | undefined;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
const DEFAULT_POLL_MS = 200;
const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024; // 64 MiB

/**
 * The lines stored in `dir` (an endpoint's `--out`), in order.
 *
 * **Order.** Files by day, then by worker (`events-D.ndjson`, then `-w1`, `-w2`, … `-w10`), each read to
 * its current end before the next; each file's lines in file order. Without `follow`, that is one
 * pass: every day's lines before the next day's. With `follow`, passes repeat every `pollMs`, picking up
 * the growth of every file and any new file: a new day's file is read as soon as it appears (the
 * reader's clock plays no part), and a line its worker still adds to the day before, around midnight,
 * comes in the next pass. The two newest days' files are watched; older ones were read to their end.
 *
 * **Whole lines only.** Only bytes up to a newline count: a line still being written is given once its
 * newline is there; a line holding a zero byte (a power cut's hole, never acknowledged), and what
 * follows it, once the endpoint's start has set it aside; `.torn` files and other names are never read.
 * A line is given once written, which can be before the store has synced it and answered 200.
 *
 * **Checkpoint: at least once, never skipped.** Within a run each line is given once. A line counts as
 * done when the consumer asks for the next one, so a loop that handles each line before pulling the next
 * is at-least-once across runs: the line being handled when the process died (and those done after the
 * last save) are given again by the next run from the same checkpoint, and no line is skipped. The
 * checkpoint is saved at most once a second while lines are being done, whenever a pass has caught up
 * with the files, and when the iteration ends (done, `break`, `signal`, an error), never counting the
 * line given last if the loop was left without asking for another. With each position it keeps the
 * last line done (its start and a SHA-256 of it): a file that no longer holds that line there is given
 * again from its start, as when a write the store refused was cut off and others were appended (even
 * to the same length), or the file was replaced.
 *
 * **Bounded.** A line longer than `maxLineBytes` is refused (a LineTooLongError), not held; an unfinished
 * last line is searched for its newline once, each pass reading only the bytes added since.
 */
export function readStore(dir: string, options: ReadStoreOptions = {}): AsyncGenerator<StoredLine, void> {
  const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
  // A timer's longest wait: past it, node would poll every millisecond instead.
  if (!Number.isFinite(pollMs) || pollMs <= 0 || pollMs > MAX_TIMER_MS) {
    throw new RangeError(
      `pollMs must be a positive number of milliseconds, at most ${MAX_TIMER_MS}, not ${pollMs}`,
    );
  }
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  // Past V8's longest string (~512 MiB) a line could not be given as text at all.
  if (!Number.isSafeInteger(maxLineBytes) || maxLineBytes < 1 || maxLineBytes > constants.MAX_STRING_LENGTH) {
    throw new RangeError(
      `maxLineBytes must be a whole number of bytes from 1 to ${constants.MAX_STRING_LENGTH}, not ${maxLineBytes}`,
    );
  }
  const types = typesOf(options.types);
  const { follow = false, checkpoint, onHole } = options;
  // '' would write `.tmp` beside the working directory, then fail to rename it.
  if (checkpoint !== undefined && (typeof checkpoint !== 'string' || checkpoint === '')) {
    throw new TypeError(`checkpoint must be a file's path, not ${describeValue(checkpoint)}`);
  }
  return read(dir, { follow, checkpoint, types, pollMs, maxLineBytes, onHole }, options.signal);
}

/** The types a read keeps, in lower case: a list of one or more of the seven, or every one. */
function typesOf(given: unknown): ReadonlySet<string> | undefined {
  if (given === undefined) return undefined;
  // A string would be read as its letters; an empty list would quietly keep nothing.
  if (!Array.isArray(given))
    throw new TypeError(`types must be a list of event types, not ${describeValue(given)}`);
  if (given.length === 0)
    throw new RangeError('types must hold one event type or more: none would keep nothing');
  const types = new Set(given.map((type) => String(type).toLowerCase()));
  const unknown = [...types].find((type) => !(EVENT_TYPES as readonly string[]).includes(type));
  if (unknown !== undefined) {
    throw new RangeError(`types must hold event types (${EVENT_TYPES.join(', ')}), not "${unknown}"`);
  }
  return types;
}

interface Plan {
  readonly follow: boolean;
  readonly checkpoint: string | undefined;
  readonly types: ReadonlySet<string> | undefined;
  readonly pollMs: number;
  readonly maxLineBytes: number;
  readonly onHole: ((hole: StoreHole) => void) | undefined;
}

async function* read(
  dir: string,
  plan: Plan,
  signal: AbortSignal | undefined,
): AsyncGenerator<StoredLine, void> {
  const positions = await Positions.load(plan.checkpoint);
  /** The files read through at least once by this run: a settled day's need not be looked at again. */
  const files = new Map<string, FileLines>();
  /** Whether the directory was listed once: only then may a follow find it gone, and wait for it. */
  let listedOnce = false;
  try {
    // Written at once: a checkpoint that cannot be written fails now, not a second in.
    await positions.save();
    do {
      const listed = await filesOf(dir, plan.follow, listedOnce);
      listedOnce = true;
      const watched = newestDays(listed, 2);
      for (const listing of listed) {
        const { name, day } = listing;
        let file = files.get(name);
        if (file !== undefined && !watched.has(day)) continue;
        if (file === undefined) {
          file = new FileLines(join(dir, name), positions.get(name), plan.maxLineBytes);
          files.set(name, file);
        }
        try {
          for await (const raw of file.lines()) {
            // The line before done, now that this one is asked for (or none: the file is read again).
            positions.set(name, file.mark);
            await positions.saveIfDue();
            if (signal?.aborted) return;
            const line = new Line(name, raw);
            if (plan.types === undefined || plan.types.has(line.type ?? '')) yield line;
          }
        } finally {
          // Past the last line asked past: one the loop was left on is not (its file's mark moves only
          // once the next is asked for), one done before a read that failed is.
          positions.set(name, file.mark);
        }
        const hole = file.newHole();
        // Which files the endpoint's start repairs is asked only then: a hole is rare, passes are not.
        if (hole !== undefined) plan.onHole?.(storeHole(name, hole, repairedAtStart(listed).has(listing)));
      }
      await positions.save(); // caught up
    } while (plan.follow && (await pause(plan.pollMs, signal)));
  } finally {
    await positions.save();
  }
}

/**
 * The store's files: none while a followed store's directory, listed before, is gone (the endpoint makes
 * it again). One that was never there is an error, followed or not.
 */
async function filesOf(dir: string, follow: boolean, listedBefore: boolean): Promise<StoreFile[]> {
  try {
    return await listStoreFiles(dir);
  } catch (err) {
    if (follow && listedBefore && (err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * What the reader tells of `hole` in `file`: whether the endpoint's start sets it aside, as it does a
 * zero byte in the last COMMIT_MAX_BYTES of a file it repairs (or in the line they start in).
 */
function storeHole(file: string, hole: Hole, repaired: boolean): StoreHole {
  const setAsideAtStart = repaired && hole.end > hole.size - COMMIT_MAX_BYTES;
  return { file, offset: hole.offset, bytes: hole.size - hole.offset, setAsideAtStart };
}

/** The days of the `n` newest days among `files`. */
function newestDays(files: readonly StoreFile[], n: number): Set<string> {
  return new Set([...new Set(files.map((f) => f.day))].slice(-n));
}

/** Waits `ms`; false, at once, if `signal` aborts. */
async function pause(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return false;
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}
