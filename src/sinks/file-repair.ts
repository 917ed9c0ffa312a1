import { dirname } from 'node:path';
import { type StoreIo, writeAll } from './file-io.ts';

// Start-up repair. Run time never leaves a partial line behind a good one (a failed write is cut off),
// so the only partial line a store file can hold is its last, left by a crash in the middle of a write.

const NEWLINE = 0x0a;
const TAIL_CHUNK = 64 * 1024; // 64 KiB read at a time, from the end, to find the last newline

export interface TornLine {
  /** The store file that ended in a partial line. */
  readonly file: string;
  /** Where its bytes were moved. */
  readonly movedTo: string;
  readonly bytes: number;
}

/** Moves a partial last line (no closing newline) out of `file`; `undefined` if the file ends cleanly. */
export async function setAsideTornTail(io: StoreIo, file: string): Promise<TornLine | undefined> {
  const fd = await io.open(file, 'r+');
  try {
    const { size } = await io.fstat(fd);
    let end = size;
    const last = Buffer.alloc(1);
    if (size === 0 || ((await io.read(fd, last, 0, 1, size - 1)) === 1 && last[0] === NEWLINE)) {
      return undefined;
    }
    // Walk back to the newline that closes the last whole line (or to the start of the file).
    let keep = 0;
    const chunk = Buffer.alloc(TAIL_CHUNK);
    while (end > 0) {
      const start = Math.max(0, end - TAIL_CHUNK);
      const bytesRead = await io.read(fd, chunk, 0, end - start, start);
      const at = chunk.subarray(0, bytesRead).lastIndexOf(NEWLINE);
      if (at !== -1) {
        keep = start + at + 1;
        break;
      }
      end = start;
    }
    const fragment = Buffer.alloc(size - keep);
    await io.read(fd, fragment, 0, fragment.length, keep);
    const movedTo = `${file}.torn`;
    const aside = await io.open(movedTo, 'a');
    try {
      await writeAll(io, aside, Buffer.concat([fragment, Buffer.from('\n')]));
      await io.fdatasync(aside);
    } finally {
      await io.close(aside);
    }
    // The fragment's new file, its name included, is durable before the original loses it.
    await io.syncDirectory(dirname(file));
    await io.ftruncate(fd, keep);
    await io.fdatasync(fd);
    return { file, movedTo, bytes: fragment.length };
  } finally {
    await io.close(fd);
  }
}
