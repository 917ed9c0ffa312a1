import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { basename } from 'node:path';
import { CHECK_BYTES, Mark, NEWLINE, readAt } from './mark.ts';

// Whole lines out of a store file that may be being appended to: only bytes up to a newline count, so a
// line still being written (its newline not there yet) is not seen until it is complete. A line holding a
// zero byte, which no line the store writes does, is a power cut's hole (or damage): not seen, nor what
// follows it, and told once (newHole).

const CHUNK_BYTES = 64 * 1024; // 64 KiB searched at a time; a longer line is then read whole
const EMPTY: Buffer = Buffer.alloc(0);

/** A line longer than `maxLineBytes`: no line the endpoint stores, so it is refused, not held in memory. */
export class LineTooLongError extends Error {
  override readonly name = 'LineTooLongError';
  /** The file's name in the store directory. */
  readonly file: string;
  /** Where the line starts in it. */
  readonly offset: number;

  constructor(path: string, offset: number, maxLineBytes: number) {
    super(
      `${path}: the line at byte ${offset} is longer than ${maxLineBytes} bytes ` +
        '(--max-line-bytes, maxLineBytes): not a line the endpoint stores, unless its events are that large',
    );
    this.file = basename(path);
    this.offset = offset;
  }
}

export interface RawLine {
  /** Where its first byte is in the file. */
  readonly offset: number;
  /** Just past its newline: where the next line starts. */
  readonly end: number;
  /** The line exactly as stored, its newline included. */
  readonly bytes: Buffer;
}

/** A line holding a zero byte: where it starts and ends, and the file's size then. */
export interface Hole {
  readonly offset: number;
  readonly end: number;
  readonly size: number;
}

/**
 * One store file's whole lines, pass after pass as it grows. A pass reads on from the last line read,
 * or from the file's start again if the file no longer holds that line there (cut back and appended to,
 * or replaced): lines may then be given twice, never skipped. Memory is a chunk and the line being
 * given: an unfinished last line is searched for its newline, not held, and only once: a later pass
 * reads only the bytes added since, then the line whole once its newline is there.
 */
export class FileLines {
  readonly #path: string;
  readonly #maxLineBytes: number;
  /** Just past the last line read: while a line is out (yielded), the one before it. */
  #mark: Mark;
  /** The file as last read through (inode, size, mtime): while it stays so there is nothing new. */
  #seen = '';
  /** No newline in `#mark.offset`..`#scanned`: the unfinished last line, searched so far. */
  #scanned: number;
  /** Its first bytes (up to CHECK_BYTES), to tell it from other bytes written in its place. */
  #tail: Buffer = EMPTY;
  /** A line holding a zero byte that the reading stopped at, not yet told (`newHole`). */
  #hole: Hole | undefined;
  /** Where the last hole told was: one is told once, however many passes stop at it. */
  #toldAt = -1;

  constructor(path: string, mark: Mark, maxLineBytes: number) {
    this.#path = path;
    this.#mark = mark;
    this.#scanned = mark.offset;
    this.#maxLineBytes = maxLineBytes;
  }

  /** Just past the last line read; while a line is out, the one before it (`Mark.START` if none). */
  get mark(): Mark {
    return this.#mark;
  }

  /** The hole (see the class) the last pass stopped at, if it is not the one told before. */
  newHole(): Hole | undefined {
    const hole = this.#hole;
    this.#hole = undefined;
    if (hole === undefined || hole.offset === this.#toldAt) return undefined;
    this.#toldAt = hole.offset;
    return hole;
  }

  /** The whole lines added since the last pass; none if the file is gone. */
  async *lines(): AsyncGenerator<RawLine, void> {
    let file: FileHandle;
    try {
      // Not blocked by a FIFO named like a store file (which would hold this reader in open() for ever),
      // nor led by a link to a file the store never wrote (the store writes none).
      file = await open(this.#path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    } catch (err) {
      const { code } = err as NodeJS.ErrnoException;
      // Removed since the listing, a link, or a socket (which no open() opens)
      if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENXIO') return;
      throw err;
    }
    try {
      const stats = await file.stat();
      if (!stats.isFile()) return; // a directory, a FIFO, a device named like a store file: not one
      const { ino, size, mtimeMs } = stats;
      const seen = `${ino} ${size} ${mtimeMs}`;
      if (seen === this.#seen) return;
      await this.#check(file, size);
      if (yield* this.#read(file, size)) this.#seen = seen;
    } finally {
      this.#mark.seal();
      await file.close();
    }
  }

  /** Starts over where the file no longer holds what was read (see the class). */
  async #check(file: FileHandle, size: number): Promise<void> {
    const { offset } = this.#mark;
    if (size < offset || !(await this.#mark.heldBy(file))) {
      this.#mark = Mark.START;
      this.#scanned = 0;
      this.#tail = EMPTY;
    } else if (
      size < this.#scanned ||
      !(await readAt(file, offset, offset + this.#tail.length)).equals(this.#tail)
    ) {
      this.#scanned = offset; // the unfinished line was cut off, and other bytes written: search them
      this.#tail = EMPTY;
    }
  }

  /**
   * The lines ending before `to`, searched from `#scanned` on; the bytes after the last are left. Returns
   * false if the file changed under the reading, for the next pass to look again.
   */
  async *#read(file: FileHandle, to: number): AsyncGenerator<RawLine, boolean> {
    let start = this.#mark.offset; // of the next line
    let pos = this.#scanned; // next byte to read
    while (pos < to) {
      const data = await readAt(file, pos, Math.min(to, pos + CHUNK_BYTES));
      if (data.length === 0) return false; // cut back meanwhile
      let at = 0;
      for (let nl = data.indexOf(NEWLINE); nl !== -1; nl = data.indexOf(NEWLINE, at)) {
        const end = pos + nl + 1;
        this.#limit(start, end - 1);
        // A line begun before this chunk is read again, whole: before its newline came, it was only
        // searched, not held (however long, whatever the passes in between).
        const bytes = start >= pos ? data.subarray(at, nl + 1) : await readAt(file, start, end);
        if (bytes.length !== end - start || bytes[bytes.length - 1] !== NEWLINE) {
          this.#scanned = start; // rewritten meanwhile
          this.#tail = EMPTY;
          return false;
        }
        if (bytes.includes(0)) {
          // A power cut's hole: the endpoint's start sets it aside, and what follows it, then writes on
          // from here. Until then it is read as a line still being written is: not given, nor what follows.
          this.#scanned = start;
          this.#tail = EMPTY;
          this.#hole = { offset: start, end, size: to };
          return true;
        }
        yield { offset: start, end, bytes };
        this.#mark = Mark.after(start, end, bytes);
        this.#scanned = end;
        this.#tail = EMPTY;
        start = end;
        at = nl + 1;
      }
      pos += data.length;
      this.#limit(start, pos);
      this.#scanned = pos;
    }
    const tailBytes = Math.min(CHECK_BYTES, this.#scanned - start);
    if (this.#tail.length < tailBytes) this.#tail = await readAt(file, start, start + tailBytes);
    return true;
  }

  /** Throws if the line from `start` has more than maxLineBytes before `end` (its newline or not yet). */
  #limit(start: number, end: number): void {
    if (end - start > this.#maxLineBytes) throw new LineTooLongError(this.#path, start, this.#maxLineBytes);
  }
}
