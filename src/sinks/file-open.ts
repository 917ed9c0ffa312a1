import { type FileIdentity, readAt, type StoreIo, writeAll } from './file-io.ts';
import { ownStat } from './file-owner.ts';
import { makeDirectory, setAsideTornTail, type TornLine } from './file-repair.ts';

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
    const { size, dev, ino } = await ownStat(io, fd, name);
    await io.syncDirectory(dir);
    return { fd, size, dev, ino };
  } catch (err) {
    await io.close(fd).catch(() => {});
    throw err;
  }
}

/**
 * Throws as opening the day's file `name` for a commit would, for what no disk space mends: the store's
 * lock not where its files are (`hold`, as openDayFile), a symbolic link there (ELOOP), a file of
 * another user's, no regular file. (Made if missing, its directory too, as the next commit would.)
 */
export async function checkDayFile(io: StoreIo, dir: string, name: string, hold: () => void): Promise<void> {
  const { fd } = await openDayFile(io, dir, name, hold);
  await io.close(fd);
}

/** Where the whole lines end in a file closed with part of a line after them. */
export interface Unfinished {
  readonly size: number;
  readonly id: FileIdentity;
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
  /**
   * The file changed from outside around a write (a cut, an addition), and what follows its last newline
   * is not yet set aside: `size` may be the middle of a line, and the next commit looks (followed).
   */
  unsure: boolean;
}

/**
 * The open file followed to where its whole lines end now (`now`: its size read this commit): it may have
 * been cut from outside (logrotate's copytruncate) or added to (a line appended by hand), and a failed
 * write is cut back to there, not to where this process last left it. A change that left part of a line
 * last (a cut in the middle of one, a line added without its newline) has that part set aside first
 * (`<file>.torn`, as start-up repair does), or the next line would be glued to it, an acknowledged event
 * no reader could parse (given to `onTorn`).
 */
export async function followed(
  io: StoreIo,
  open: OpenFile,
  now: { readonly size?: number } | undefined,
  onTorn: (torn: TornLine) => void,
): Promise<void> {
  // Unread (a host's io without `identity`): only a fragment known of is set aside.
  if (now?.size === undefined) return open.unsure && !open.dirty ? setAsideTail(io, open, onTorn) : undefined;
  if (open.dirty) open.size = Math.min(open.size, now.size);
  else if (now.size !== open.size || open.unsure) await setAsideTail(io, open, onTorn);
}

/**
 * What follows `file`'s last newline set aside (`<file>.torn`, given to `onTorn`), and its size read
 * again. Until that is done the file stays `unsure` (a set-aside that fails, on a full disk, is tried
 * again at the next commit, whose events are refused meanwhile): no line is written after part of one.
 */
async function setAsideTail(io: StoreIo, file: OpenFile, onTorn: (torn: TornLine) => void): Promise<void> {
  file.unsure = true;
  const torn = await setAsideTornTail(io, file.name);
  file.size = (await io.fstat(file.fd)).size;
  file.unsure = false;
  if (torn !== undefined) onTorn(torn);
}

/**
 * Appends `bytes` (whole lines) to `file` and syncs them, making sure they begin a line: a cut or an
 * addition from outside that landed between the commit's look (followed) and this write glues the first
 * of them to part of a line. Told by the file's size after the write, they are taken out again, the part
 * set aside (`onTorn`) and they are written again (three tries). A change after the write (a cut into or
 * through the commit) refuses the commit: only a partial last line is set aside then, never a cut at
 * offsets the change made wrong (into older lines). Nothing is acknowledged before this returns.
 */
export async function appendSynced(
  io: StoreIo,
  file: OpenFile,
  bytes: Uint8Array,
  onTorn: (torn: TornLine) => void,
): Promise<void> {
  for (let tries = 1; ; tries++) {
    file.dirty = true;
    file.written = 0;
    await writeAll(io, file.fd, bytes, file);
    // The size beside the sync: on the thread pool at once, no later hop (on one core both are syscalls).
    const [, { size }] = await Promise.all([io.fdatasync(file.fd), io.fstat(file.fd)]);
    const start = size - bytes.length;
    const landed =
      start === file.size ? 'whole' : await landedAt(io, file, bytes, start).catch(() => 'unknown' as const);
    if (landed === 'whole') {
      file.size = size;
      file.dirty = false;
      return;
    }
    if (landed === 'glued') await io.ftruncate(file.fd, start);
    file.dirty = false;
    file.unsure = true;
    // Renamed meanwhile (the file at its name is another, which the next commit's look opens), or not
    // read (`unknown`): left to the next commit's look.
    if (landed === 'glued' || landed === 'moved') await setAsideTail(io, file, onTorn);
    if (landed !== 'glued' || tries === 3) {
      throw Object.assign(new Error('the store file changed from outside while a commit was written'), {
        code: 'EIO',
      });
    }
  }
}

/**
 * Where a commit's `bytes` landed, when the file's size after it says the file changed from outside: at
 * `start`, after a newline (`whole`) or after part of a line (`glued`); or not there (`moved`: a change
 * after the write, into or through the commit), which only a read of what lies at `start` tells from a
 * change before it; or the file at its name is another (`renamed`). Read through a descriptor of its own.
 */
async function landedAt(
  io: StoreIo,
  file: OpenFile,
  bytes: Uint8Array,
  start: number,
): Promise<'whole' | 'glued' | 'moved' | 'renamed'> {
  const fd = await io.open(file.name, 'r');
  try {
    if (!sameFile(file.id, await io.fstat(fd))) return 'renamed';
    if (start < 0) return 'moved';
    const from = Math.max(0, start - 1);
    const found = Buffer.alloc(start - from + bytes.length);
    const read = await readAt(io, fd, found, from).then(
      () => true,
      () => false, // ended early: cut since
    );
    if (!read || !found.subarray(start - from).equals(bytes)) return 'moved';
    return start === 0 || found[0] === NEWLINE ? 'whole' : 'glued';
  } finally {
    await io.close(fd);
  }
}

const NEWLINE = 0x0a;

/**
 * `opened` as the store keeps it. `unfinished`: where the whole lines end in a file this process closed
 * with part of a line after them (its cut failed), cut before anything is written if `opened` is that
 * file, not another made at its path since. Any other that is not empty may end in part of a line (cut
 * while another day's file was open; put at its path): `unsure`, looked at before a commit (followed).
 */
export function openFile(name: string, opened: Opened, unfinished: Unfinished | undefined): OpenFile {
  const whole = unfinished !== undefined && sameFile(unfinished.id, opened) ? unfinished.size : undefined;
  const id = { dev: opened.dev, ino: opened.ino };
  const size = whole ?? opened.size;
  const unsure = whole === undefined && opened.size > 0;
  return { name, fd: opened.fd, id, size, dirty: whole !== undefined, written: 0, unsure };
}

/**
 * Truncates `file` back to its last whole line, durably. A file cut short from outside since its size
 * was read (logrotate's copytruncate) is not grown back to it with zeros: the failed write's bytes are
 * its last `written`, and a cut made between this look and the truncation, which grows the file again
 * with zeros, is found by them (no stored line holds a zero byte) and cut off too. A file that changed
 * from outside around the write may end inside a line after that: what follows its last newline is set
 * aside then (setAsideTail, given to `onTorn`).
 */
export async function cutBack(io: StoreIo, file: OpenFile, onTorn: (torn: TornLine) => void): Promise<void> {
  const { size } = await io.fstat(file.fd);
  if (size !== file.size + file.written) file.unsure = true;
  const end = size >= file.size ? file.size : Math.max(0, size - file.written);
  await io.ftruncate(file.fd, end);
  const whole = await beforeZeros(io, file, end);
  if (whole < end) await io.ftruncate(file.fd, whole);
  await io.fdatasync(file.fd);
  file.size = whole;
  file.dirty = false;
  if (file.unsure) await setAsideTail(io, file, onTorn);
}

/**
 * Where the zero bytes that end the first `end` bytes of `file` begin: `end` when its last byte is not
 * one. Read through a descriptor of its own (the store's writes only), from the file at its name when
 * that is still the one open.
 */
async function beforeZeros(io: StoreIo, file: OpenFile, end: number): Promise<number> {
  if (end === 0) return 0;
  const fd = await io.open(file.name, 'r');
  try {
    if (!sameFile(file.id, await io.fstat(fd))) return end;
    const chunk = Buffer.allocUnsafe(Math.min(end, ZERO_SCAN_BYTES));
    for (let to = end; to > 0; ) {
      const from = Math.max(0, to - chunk.length);
      const part = chunk.subarray(0, to - from);
      await readAt(io, fd, part, from);
      for (let i = part.length - 1; i >= 0; i--) if (part[i] !== 0) return from + i + 1;
      to = from;
    }
    return 0;
  } finally {
    await io.close(fd);
  }
}

const ZERO_SCAN_BYTES = 64 * 1024;

/** Whether `a` is the file `b` says (undefined: the path names none now). */
export const sameFile = (a: FileIdentity, b: FileIdentity | undefined): boolean =>
  a.dev === b?.dev && a.ino === b.ino;
