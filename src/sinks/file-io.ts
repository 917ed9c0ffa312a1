import {
  close,
  constants,
  fdatasync,
  fdatasyncSync,
  fstat,
  fstatSync,
  fsync,
  ftruncate,
  mkdir,
  open,
  read,
  readdir,
  rename,
  stat,
  statSync,
  unlink,
  write,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { coresAllowed } from '../cores.ts';
import { lockStore, type StoreLock } from './store-lock.ts';

/**
 * Every file operation the default store and the reader's checkpoint make, on raw descriptors: node's
 * `fs` unless told otherwise. A test gives its own to make a write fail or come up short (a full disk)
 * without filling a disk, or to write down every change and build the states a power cut could leave
 * (test/crash-store.test.ts).
 */
export interface StoreIo {
  /**
   * `'a'`: append, creating the file if needed; `'r+'`: read and write a file that exists; `'r'`: read a
   * file that exists, without waiting on a FIFO; `'w'`: write from the start, creating the file or
   * emptying it; `'wx'`: write a new file, EEXIST when anything is at `path`. None but `'r'` through a
   * symbolic link (ELOOP).
   */
  open(path: string, flags: OpenFlags): Promise<number>;
  /**
   * Writes at the end of a file opened with `'a'`, else where the last write ended; resolves with the
   * bytes written, which may be fewer.
   */
  write(fd: number, bytes: Uint8Array, offset: number, length: number): Promise<number>;
  /** Reads at `position`; resolves with the bytes read. */
  read(fd: number, into: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  fdatasync(fd: number): Promise<void>;
  /** Makes the names in `dir` durable (fsync of the directory): a file created or renamed in it survives a crash. */
  syncDirectory(dir: string): Promise<void>;
  ftruncate(fd: number, length: number): Promise<void>;
  fstat(fd: number): Promise<FileStat>;
  /**
   * The file `path` names now, following a symbolic link, and its size if known, or undefined when it
   * names none: the store checks that its open file is still the one at its path (not removed, renamed
   * or replaced), and where it ends (cut from outside).
   */
  identity?(path: string): Promise<(FileIdentity & { readonly size?: number }) | undefined>;
  close(fd: number): Promise<void>;
  /** Replaces `to` with `from` in one step (a crash leaves one or the other), once the directory is synced. */
  rename(from: string, to: string): Promise<void>;
  /** The names in `dir`. */
  readdir(dir: string): Promise<string[]>;
  /** Removes the name `path` (a link itself, not what it leads to). Without it, nothing is removed. */
  unlink?(path: string): Promise<void>;
  /** Creates `dir` and its parents if missing; resolves with the first directory it created, if any. */
  mkdir(dir: string): Promise<string | undefined>;
  /**
   * Locks the store directory `dir` (it exists) for this process, or for `pid` (a worker's primary), or
   * throws (SEG_STORE_IN_USE): one writer to a store. Without it (a test's io), nothing is locked.
   */
  lock?(dir: string, pid?: number): StoreLock;
  /**
   * True when `write` and `fdatasync` do their work before they return (blocking the event loop until
   * the disk answers): the store then commits at the end of the first turn of the event loop that
   * appends no more lines (`CommitQueue.quiet`), so that every line appended until then joins one commit.
   */
  readonly blocking?: boolean | undefined;
}

export interface StoreOptions {
  /**
   * The file operations: node's `fs` (`defaultIo`: the group commit on the event loop when the process
   * has one core, else on the thread pool) unless a test gives its own.
   */
  readonly io?: StoreIo | undefined;
  /**
   * Worker K of several processes sharing `dir`: its files are `events-YYYY-MM-DD-wK.ndjson`, and only
   * they are repaired at open (the others may be being written). The primary repairs them all before
   * any worker starts (`repairStore`).
   */
  readonly worker?: number | undefined;
  /**
   * For worker K of --workers: the pid of its primary, which locks the directory for every worker and
   * under whose lock the worker writes, and makes it again in the primary's name where it must (a
   * directory replaced). Without it a worker takes no lock (a host's own worker processes).
   */
  readonly lockedFor?: number | undefined;
  /**
   * Characters of lines that may wait for the disk: past it appends are refused at once (503, retried)
   * until a commit takes them. @default 33554432 (32 Mi)
   */
  readonly maxQueuedChars?: number | undefined;
  /** A commit under way this long: the store says it cannot write (health 503) until it ends. @default 5000 */
  readonly stuckMs?: number | undefined;
}

/** How StoreIo's `open` opens a file. */
export type OpenFlags = 'a' | 'r+' | 'r' | 'w' | 'wx';

/** Which file: its device and inode. */
export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
}

/** What the store reads of an open file: `uid`, its owner's, and `mode`, its type, where known. */
export type FileStat = FileIdentity & {
  readonly size: number;
  readonly uid?: number | undefined;
  readonly mode?: number | undefined;
  /** Its names (hard links). */
  readonly nlink?: number | undefined;
  /** When it was last written (ms since the epoch). */
  readonly mtimeMs?: number | undefined;
};
type Done<T> = (err: NodeJS.ErrnoException | null, value: T) => void;

// The callback API on the raw descriptor: one thread-pool round trip per call, without the promise
// API's per-call machinery: the write+sync cycle is the store's critical path (bench/HISTORY.md).
const call = <T>(run: (done: Done<T>) => void): Promise<T> =>
  new Promise((resolve, reject) => run((err, value) => (err ? reject(err) : resolve(value))));

// No write follows a symbolic link (ELOOP): one planted in --out would send events to another user's
// file, or have repair cut a file elsewhere. No open waits on a FIFO where a file was expected (O_NONBLOCK,
// which regular files ignore): a writer gets ENXIO, a reader nothing; a wait held a pool thread for good.
const { O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_RDWR, O_WRONLY } = constants;
const FLAGS: Record<OpenFlags, number> = {
  a: O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK,
  'r+': O_RDWR | O_NOFOLLOW | O_NONBLOCK,
  w: O_WRONLY | O_CREAT | constants.O_TRUNC | O_NOFOLLOW | O_NONBLOCK,
  wx: O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK,
  r: constants.O_RDONLY | O_NONBLOCK,
};

/**
 * Files and directories the store creates are its user's alone: stored lines hold customers' events and
 * their settings as sent, which often carry their credentials for the partner's service.
 */
const FILE_MODE = 0o600;
const DIRECTORY_MODE = 0o700;

/** Node's `fs`. */
export const nodeIo: StoreIo = {
  open: (path, flags) => call((done) => open(path, FLAGS[flags], FILE_MODE, done)),
  write: (fd, bytes, offset, length) => call((done) => write(fd, bytes, offset, length, null, done)),
  read: (fd, into, offset, length, position) =>
    call((done) => read(fd, into, offset, length, position, done)),
  fdatasync: (fd) => call<void>((done) => fdatasync(fd, (err) => done(err, undefined))),
  syncDirectory: async (dir) => {
    const fd = await call<number>((done) => open(dir, 'r', done));
    try {
      await call<void>((done) => fsync(fd, (err) => done(err, undefined)));
    } finally {
      await call<void>((done) => close(fd, (err) => done(err, undefined)));
    }
  },
  ftruncate: (fd, length) => call<void>((done) => ftruncate(fd, length, (err) => done(err, undefined))),
  fstat: (fd) => call((done) => fstat(fd, done)),
  identity: (path) =>
    call((done) =>
      stat(path, (err, found) => done(err?.code === 'ENOENT' ? null : err, err ? undefined : found)),
    ),
  close: (fd) => call<void>((done) => close(fd, (err) => done(err, undefined))),
  rename: (from, to) => call<void>((done) => rename(from, to, (err) => done(err, undefined))),
  readdir: (dir) => call((done) => readdir(dir, done)),
  unlink: (path) => call<void>((done) => unlink(path, (err) => done(err, undefined))),
  mkdir: (dir) => makeDirectory(dir),
  lock: lockStore,
};

/**
 * `mkdir -p`, a level at a time: resolves with the first directory it created, if any. Not node's
 * recursive mkdir, which retries for ever where the kernel answers ENOENT under a directory that exists
 * (procfs: `--out /proc/x` hung the start-up).
 */
async function makeDirectory(dir: string): Promise<string | undefined> {
  const missing: string[] = [];
  // Walked up as given (not resolved): the path returned is in the caller's form, as node's is.
  for (let at = dir; ; at = dirname(at)) {
    const found = await call<unknown>((done) => stat(at, done)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      return undefined;
    });
    if (found !== undefined || dirname(at) === at) break;
    missing.unshift(at);
  }
  for (const level of missing) {
    await call<void>((done) =>
      mkdir(level, DIRECTORY_MODE, (err) => done(err?.code === 'EEXIST' ? null : err, undefined)),
    );
  }
  return missing[0];
}

/**
 * Node's `fs`, its group commit's `write` and `fdatasync` made on the event loop's thread. For a process
 * with one core: a thread-pool call's result waits for that thread to be given the core the busy main
 * thread holds (up to a scheduler slice, ~1 ms, twice a commit), longer than this disk takes to sync
 * (~0.2 ms idle, ~0.6 ms under load). Measured in bench/HISTORY.md, "Committing on the event loop".
 */
export const loopIo: StoreIo = {
  ...nodeIo,
  write: async (fd, bytes, offset, length) => writeSync(fd, bytes, offset, length),
  fdatasync: async (fd) => fdatasyncSync(fd),
  // The file's size beside each commit's sync (file-open.ts, appendSynced), and the rare looks of repair.
  fstat: async (fd) => fstatSync(fd),
  // Once a commit: a look at the inode cache, not worth a thread-pool round trip on one core.
  identity: async (path) => statSync(path, { throwIfNoEntry: false }),
  blocking: true,
};

/** What the store uses unless told otherwise: `loopIo` when this process may run on one core only, else `nodeIo`. */
export const defaultIo = (): StoreIo => (coresAllowed() === 1 ? loopIo : nodeIo);

/**
 * Writes all of `bytes`, however many calls that takes; rejects with the error of the call that failed.
 * `progress.written` counts the bytes written so far (those that went in before a failure).
 */
export async function writeAll(
  io: StoreIo,
  fd: number,
  bytes: Uint8Array,
  progress = { written: 0 },
): Promise<void> {
  while (progress.written < bytes.length) {
    const written = await io.write(fd, bytes, progress.written, bytes.length - progress.written);
    if (!(written > 0)) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
    progress.written += written;
  }
}

/** Fills `into` with the file's bytes from `position`, however many reads that takes. */
export async function readAt(io: StoreIo, fd: number, into: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const bytesRead = await io.read(fd, into, done, into.length - done, position + done);
    if (bytesRead === 0) throw Object.assign(new Error('the file ended early'), { code: 'EIO' });
    done += bytesRead;
  }
}
