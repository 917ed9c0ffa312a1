import type { FileIdentity, StoreIo } from './file-io.ts';
import { makeDirectory } from './file-repair.ts';

// Opening a day's file of the default store for appending, as file-store.ts does at start, on a new day,
// and whenever the file at its path is no longer the one it had open.

/** A day's file opened for appending: its descriptor, which file it is, and its size. */
export interface Opened extends FileIdentity {
  readonly fd: number;
  readonly size: number;
}

/**
 * Opens `name` (in `dir`) for appending, creating it if need be, its name made durable before any event
 * in it is acknowledged (POSIX does not promise it survives a crash because the file was synced). A
 * directory removed meanwhile is made again, durably, as at start-up. First `hold` makes sure the store's
 * lock is in the directory at `dir` now (one moved away, removed or replaced is a new directory another
 * endpoint could start on), or throws: nothing is made in a directory another endpoint holds.
 */
export async function openDayFile(
  io: StoreIo,
  dir: string,
  name: string,
  hold: (() => void) | undefined,
): Promise<Opened> {
  const open = async () => {
    hold?.();
    return io.open(name, 'a');
  };
  const fd = await open().catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
    await makeDirectory(io, dir);
    return open();
  });
  try {
    const { size, dev, ino } = await io.fstat(fd);
    await io.syncDirectory(dir);
    return { fd, size, dev, ino };
  } catch (err) {
    await io.close(fd).catch(() => {});
    throw err;
  }
}

/** The day's file being appended to. `size` is where its last whole line ends. */
export interface OpenFile {
  readonly name: string;
  readonly fd: number;
  /** The file opened, to tell whether its name still leads to it. */
  readonly id: FileIdentity;
  size: number;
  /** Bytes may lie past `size` (a write failed part-way) and must be cut off before anything else. */
  dirty: boolean;
  /** Bytes of its last write that went in: after one that failed, the file's last (it is appended to). */
  written: number;
}

/** `opened` as the store keeps it: its whole lines end at `whole` when a failed write left more (cut first). */
export function openFile(name: string, opened: Opened, whole: number | undefined): OpenFile {
  const id = { dev: opened.dev, ino: opened.ino };
  return { name, fd: opened.fd, id, size: whole ?? opened.size, dirty: whole !== undefined, written: 0 };
}

/**
 * Truncates `file` back to its last whole line, durably. A file cut short from outside since its size
 * was read (logrotate's copytruncate) is not grown back to it with zeros: the failed write's bytes are
 * its last `tail`.
 */
export async function cutBack(io: StoreIo, file: OpenFile): Promise<void> {
  const { size } = await io.fstat(file.fd);
  await io.ftruncate(file.fd, size >= file.size ? file.size : Math.max(0, size - file.written));
  await io.fdatasync(file.fd);
  file.dirty = false;
}

/** Whether `a` is the file `b` says (undefined: the path names none now). */
export const sameFile = (a: FileIdentity, b: FileIdentity | undefined): boolean =>
  a.dev === b?.dev && a.ino === b.ino;
