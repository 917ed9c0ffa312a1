import { readAt, type StoreIo } from './file-io.ts';
import { othersOwn, regular } from './file-owner.ts';

// What a start-up killed while it set a fragment aside (file-repair.ts) left at the end of the fragment's
// `.torn` file: the part of its copy it had made, the file's last line, unfinished (a copy that ends
// writes a line end); or, killed after the copy and before the store file's cut, the whole copy. Without
// this, each start-up killed in the middle of a long fragment left one more such part, the next copy
// glued to it (a crash probe's restart loop: 730 MB of .torn for 314 MB), and each killed after its
// copy left one more whole copy (7 of a 100 MiB fragment).

const NEWLINE = 0x0a;
const CHUNK = 64 * 1024;

/** How the fragment goes on at the end of its `.torn` file: appended, after a line end, or already there. */
export type AsideEnd = 'append' | 'new-line' | 'copied';

/**
 * Takes off the end of `movedTo` a copy of the fragment `from`–`to` of `fd` cut short: an unfinished last
 * line that is the fragment's start. 'new-line' when the fragment must begin a line of its own after what
 * stays: an unfinished line that is not its start (a fragment of several lines cut after one of them), or
 * a copy that cannot be taken off (a file with other names, which would be cut too; one append-only).
 * 'copied' when `movedTo` ends in the whole copy, on lines of its own. Opened as the store files are (no
 * link followed), or, append-only, to be read (a link then followed: the append that follows refuses
 * it); never throws: what is not a file of this user's is left to that append, which refuses it.
 */
export async function cutShortCopy(
  io: StoreIo,
  fd: number,
  from: number,
  to: number,
  movedTo: string,
): Promise<AsideEnd> {
  let aside: number;
  let cuttable = true;
  try {
    aside = await io.open(movedTo, 'r+');
  } catch (err) {
    // None yet, a link, or what the append refuses too: nothing to add.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EPERM' && code !== 'EACCES') return 'append';
    // Append-only (`chattr +a`): its end is read, but a copy cut short cannot be taken off. Not this
    // user's to read: its end unseen, the fragment begins a line (an empty one at worst).
    const read = await io.open(movedTo, 'r').catch(() => undefined);
    if (read === undefined) return 'new-line';
    aside = read;
    cuttable = false;
  }
  try {
    const { size, mode, uid, nlink = 1 } = await io.fstat(aside);
    if (size === 0) return 'append';
    if (!regular(mode) || othersOwn(uid)) return cuttable ? 'append' : 'new-line';
    if ((await byteAt(io, aside, size - 1)) === NEWLINE) {
      return (await endsInCopy(io, fd, from, to, aside, size)) ? 'copied' : 'append';
    }
    if (!cuttable) return 'new-line';
    const start = await lastLineStart(io, aside, size, to - from);
    if (start === undefined || !(await same(io, fd, from, aside, start, size - start))) return 'new-line';
    if (nlink !== 1) return 'new-line';
    await io.ftruncate(aside, start);
    await io.fdatasync(aside);
    return 'append';
  } catch {
    return 'new-line';
  } finally {
    await io.close(aside).catch(() => {});
  }
}

/**
 * Whether `aside`'s `size` bytes end in the fragment `from`–`to` of `fd` and its line end, the fragment
 * starting a line: what a copy that ended writes.
 */
async function endsInCopy(io: StoreIo, fd: number, from: number, to: number, aside: number, size: number) {
  const start = size - 1 - (to - from);
  if (start < 0 || (start > 0 && (await byteAt(io, aside, start - 1)) !== NEWLINE)) return false;
  return same(io, fd, from, aside, start, to - from);
}

async function byteAt(io: StoreIo, fd: number, at: number): Promise<number | undefined> {
  const one = Buffer.alloc(1);
  await readAt(io, fd, one, at);
  return one[0];
}

/** The start of the last line of `fd`'s `size` bytes, if it is at most `max` bytes long. */
async function lastLineStart(
  io: StoreIo,
  fd: number,
  size: number,
  max: number,
): Promise<number | undefined> {
  const floor = Math.max(0, size - max - 1);
  const chunk = Buffer.alloc(Math.min(CHUNK, size - floor));
  for (let end = size; end > floor; ) {
    const start = Math.max(floor, end - CHUNK);
    const part = chunk.subarray(0, end - start);
    await readAt(io, fd, part, start);
    const newline = part.lastIndexOf(NEWLINE);
    if (newline !== -1) return start + newline + 1;
    end = start;
  }
  return size <= max ? 0 : undefined;
}

/** Whether `length` bytes of `a` from `atA` are those of `b` from `atB`, compared a chunk at a time. */
async function same(io: StoreIo, a: number, atA: number, b: number, atB: number, length: number) {
  const one = Buffer.alloc(Math.min(CHUNK, length));
  const other = Buffer.alloc(one.length);
  for (let done = 0; done < length; done += one.length) {
    const n = Math.min(one.length, length - done);
    await readAt(io, a, one.subarray(0, n), atA + done);
    await readAt(io, b, other.subarray(0, n), atB + done);
    if (!one.subarray(0, n).equals(other.subarray(0, n))) return false;
  }
  return true;
}
