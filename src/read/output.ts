// `read`'s stdout when it is a regular file (`> FILE`, `>> FILE`): written by this process itself, so
// that a line goes in whole or not at all.

import { fstatSync, ftruncateSync, writeSync } from 'node:fs';
import type { Writable } from 'node:stream';

/**
 * Lines written to a regular file whole, or not at all. Node's stream for a file takes a short write (a
 * size limit reached, a full disk) for the whole line, which would count as printed with its end missing.
 * What went in of a line that fails is cut off the file's end, where a redirect's writes go, so that the
 * next run from the checkpoint prints it again from a line's start: only when the file's size shows those
 * bytes to be its last (every write so far made it grow by its length). Written from elsewhere than its
 * end (`1<>FILE`), or by another process too, the file keeps the part: the line itself is not lost.
 */
export class FileOutput {
  readonly #fd: number;
  /** The file's size if every line so far went at its end; nothing else is known to have written. */
  #size: number;

  private constructor(fd: number, size: number) {
    this.#fd = fd;
    this.#size = size;
  }

  /** `stdout`'s file, when it is a regular file. */
  static of(stdout: Writable): FileOutput | undefined {
    const { fd } = stdout as { fd?: unknown };
    if (typeof fd !== 'number') return undefined;
    try {
      const stat = fstatSync(fd);
      return stat.isFile() ? new FileOutput(fd, stat.size) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Writes `bytes` whole; a failure goes to `onError`, the part written taken back when it can be. */
  write(bytes: Buffer, onError: (err: NodeJS.ErrnoException) => void): void {
    let done = 0;
    try {
      while (done < bytes.length) done += writeSync(this.#fd, bytes, done);
      this.#size += bytes.length;
    } catch (err) {
      this.#takeBack(done);
      onError(err as NodeJS.ErrnoException);
    }
  }

  #takeBack(done: number): void {
    try {
      if (done > 0 && fstatSync(this.#fd).size === this.#size + done) ftruncateSync(this.#fd, this.#size);
    } catch {
      // The part stays: the next run's copy of the line follows it, the line itself not lost.
    }
  }
}
