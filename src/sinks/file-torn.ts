import { readAt, type StoreIo } from './file-io.ts';
import { ownStat } from './file-owner.ts';

// What a start-up killed while it set a fragment aside (file-repair.ts) left in the fragment's `.torn`
// file, found by the next one: without it, each start-up killed in the middle of a long fragment left
// one more copy of its start there (a crash probe's restart loop: 730 MB of .torn for 314 MB).

const NEWLINE = 0x0a;
const CHUNK = 64 * 1024;

/** What setting a fragment aside still takes, after what an earlier start-up left. */
export type AsideLeft = 'done' | 'copy' | 'copy on a new line';

/**
 * Looks at the end of `movedTo` for a copy of the fragment `from`–`to` of `fd`: a whole one (the
 * fragment and its line end: the store file was not cut yet) is kept, `'done'`; one cut short (the
 * file's last line, unfinished, is the fragment's start) is taken off. Another unfinished last line is
 * left, and the fragment goes on a new line after it.
 */
export async function leftAside(
  io: StoreIo,
  fd: number,
  from: number,
  to: number,
  movedTo: string,
): Promise<AsideLeft> {
  const aside = await io.open(movedTo, 'r+').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (aside === undefined) return 'copy';
  try {
    const { size } = await ownStat(io, aside, movedTo);
    if (size === 0) return 'copy';
    const length = to - from;
    const whole = size - length - 1;
    if ((await byteAt(io, aside, size - 1)) === NEWLINE) {
      const begins = whole === 0 || (whole > 0 && (await byteAt(io, aside, whole - 1)) === NEWLINE);
      if (!begins || !(await same(io, fd, from, aside, whole, length))) return 'copy';
      await io.fdatasync(aside);
      return 'done';
    }
    const start = await lastLineStart(io, aside, size, length);
    if (start === undefined || !(await same(io, fd, from, aside, start, size - start))) {
      return 'copy on a new line';
    }
    await io.ftruncate(aside, start);
    await io.fdatasync(aside);
    return 'copy';
  } finally {
    await io.close(aside);
  }
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
  const chunk = Buffer.alloc(CHUNK);
  const floor = Math.max(0, size - max - 1);
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
