import { realpathSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';

// The file store's file names, as file-store.ts writes them and src/read/ reads them: one file a UTC day, `events-YYYY-MM-DD.ndjson`
// for a single process, `events-YYYY-MM-DD-wK.ndjson` for worker K of several. Anything else in the
// directory (`.torn` fragments, a checkpoint, an editor's backup) is no store file and is never read.

const STORE_FILE_RE = /^events-(\d{4}-\d{2}-\d{2})(?:-w(\d+))?\.ndjson$/;

export interface StoreFile {
  readonly name: string;
  /** `YYYY-MM-DD`: sorts as the dates do. */
  readonly day: string;
  /** K of `-wK`; -1 for a single process's file, which comes before the workers' of the same day. */
  readonly worker: number;
}

/** The store file `name` is, or `undefined` for any other name. */
export function storeFile(name: string): StoreFile | undefined {
  const match = STORE_FILE_RE.exec(name);
  if (match === null) return undefined;
  return { name, day: match[1] as string, worker: match[2] === undefined ? -1 : Number(match[2]) };
}

// A dot-file: a glob of the store's files (cat out/*) passes over it (store-lock.ts).
export const LOCK_NAME = '.segment-endpoint.lock';

/**
 * Whether `name` is a file the store writes, or may come to, or removes: a day's events, the fragment a
 * repair sets aside beside it (`<file>.torn`), its lock and the lock's name while it is taken over
 * (`<lock>.<pid>`), a disk probe's file (`.probe…`, whose leftovers a start removes). Another program's
 * file there would be overwritten or removed.
 */
export function ownedByTheStore(name: string): boolean {
  if (name === LOCK_NAME || name.startsWith(`${LOCK_NAME}.`) || name.startsWith('.probe')) return true;
  return storeFile(name.endsWith('.torn') ? name.slice(0, -5) : name) !== undefined;
}

/** Day, then worker by number (`-w2` before `-w10`): the one order every reader of a directory uses. */
export function inReadingOrder(a: StoreFile, b: StoreFile): number {
  if (a.day !== b.day) return a.day < b.day ? -1 : 1;
  return a.worker - b.worker;
}

/** Each writer's (each worker's) last two files of `files`, in reading order: today's and the day before's. */
export function lastTwoOfEach(files: readonly StoreFile[]): Map<number, StoreFile[]> {
  const byWriter = new Map<number, StoreFile[]>();
  for (const file of files) byWriter.set(file.worker, [...(byWriter.get(file.worker) ?? []), file]);
  for (const [writer, own] of byWriter) byWriter.set(writer, own.sort(inReadingOrder).slice(-2));
  return byWriter;
}

/** The store files in `dir`, in reading order. */
export async function listStoreFiles(dir: string): Promise<StoreFile[]> {
  const files: StoreFile[] = [];
  for (const name of await readdir(dir)) {
    const file = storeFile(name);
    if (file !== undefined) files.push(file);
  }
  return files.sort(inReadingOrder);
}

/** A UTC day, each store file's span. */
export const DAY_MS = 24 * 60 * 60 * 1000;

/** The file of `dir` a record received at a given time goes to (its UTC day's), the day's name kept. */
export class DayFiles {
  #day = -1;
  #file = '';

  constructor(
    readonly dir: string,
    /** `-wK` for worker K of several, else nothing. */
    readonly suffix: string,
  ) {}

  at(at: Date): string {
    const day = Math.floor(at.getTime() / DAY_MS);
    if (day !== this.#day) {
      this.#day = day;
      this.#file = join(this.dir, `events-${at.toISOString().slice(0, 10)}${this.suffix}.ndjson`);
    }
    return this.#file;
  }
}

/**
 * `path` as the kernel follows it: a `..` goes up from where the components before it lead, symbolic
 * links included, where path.resolve drops the component before it as text. With `link` a link to
 * `/data/deep`, `base/link/../store` is `/data/store` to the kernel (where `mkdir -p` makes it) and
 * `base/store` to path.resolve: a store that took one for the other made its directory in one place and
 * looked for it, and for its lock, in the other. Components that do not exist yet are joined as they
 * are: directories the store's `mkdir -p` makes. Links after the last `..` are left as they are, as
 * without any `..`.
 */
export function kernelPath(path: string): string {
  const parts = path.split(sep);
  const last = parts.lastIndexOf('..');
  if (last === -1) return resolve(path);
  let at = isAbsolute(path) ? sep : process.cwd(); // the working directory is a real path (getcwd)
  for (const part of parts.slice(0, last + 1)) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      at = dirname(at);
      continue;
    }
    const next = join(at, part);
    try {
      at = realpathSync(next);
    } catch {
      at = next; // not there yet (or not readable): made, or refused, by whoever opens it
    }
  }
  return resolve(at, ...parts.slice(last + 1)); // after the last .., as given: no link resolved there
}
