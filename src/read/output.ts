// `read`'s stdout when it is a regular file (`> FILE`, `>> FILE`): written by this process itself, so
// that a line goes in whole or not at all.

import { fstatSync, ftruncateSync, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';

/** The descriptor of `stdout` when it is a regular file (`> FILE`, `>> FILE`). */
export function regularFile(stdout: Writable): number | undefined {
  const { fd } = stdout as { fd?: unknown };
  if (typeof fd !== 'number') return undefined;
  try {
    return fstatSync(fd).isFile() ? fd : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Writes a line to a regular file whole, or not at all. Node's stream for a file takes a short write (a
 * size limit reached, a full disk) for the whole line, which would count as printed with its end missing.
 * What went in of a line that fails is cut off the file's end, where a redirect's writes go: the next run
 * from the checkpoint prints it again from a line's start.
 */
export function writeWhole(fd: number, bytes: Buffer, onError: (err: NodeJS.ErrnoException) => void): void {
  let done = 0;
  try {
    while (done < bytes.length) done += writeSync(fd, bytes, done);
  } catch (err) {
    try {
      if (done > 0) ftruncateSync(fd, fstatSync(fd).size - done);
    } catch {
      // The part stays: the next run's copy of the line follows it, the line itself not lost.
    }
    onError(err as NodeJS.ErrnoException);
  }
}
