import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';

// Where a reader is in a store file, and how it tells that the file still holds what it read there. An
// offset alone cannot: the store cuts a file back to its last whole line when a write fails (a full
// disk) and appends again, so the bytes before an offset may since be other lines, and the file may even
// be as long as before with a newline just before the offset. So a mark also keeps the last line done.

export const NEWLINE = 0x0a;

/**
 * How much of a line its fingerprint covers: all of most lines the endpoint writes, and of any line its
 * receivedAt to the millisecond and the start of its event, which tell two lines apart. Bounded, so a
 * look costs little however long the line.
 */
export const CHECK_BYTES = 64 * 1024; // 64 KiB

/**
 * A position in one file: `offset`, the byte just past the last line done (0: none yet), and that line:
 * where it starts and the SHA-256 (hex) of its bytes, newline excluded, up to CHECK_BYTES. A mark from a
 * checkpoint of an older version has an offset only.
 */
export class Mark {
  static readonly START = new Mark(0);

  readonly offset: number;
  readonly lastLineStart: number | undefined;
  /** The line's first bytes, until its hash is asked for (most marks are replaced before that). */
  #head: Buffer | undefined;
  #sha256: string | undefined;

  constructor(offset: number, lastLineStart?: number, lastLineSha256?: string) {
    this.offset = offset;
    this.lastLineStart = lastLineStart;
    this.#sha256 = lastLineSha256;
  }

  /** The mark just past the line of bytes `start`..`end` (its newline last), whose first bytes are `head`. */
  static after(start: number, end: number, head: Buffer): Mark {
    const mark = new Mark(end, start);
    mark.#head = head.subarray(0, Math.min(CHECK_BYTES, end - 1 - start));
    return mark;
  }

  get lastLineSha256(): string | undefined {
    return this.seal().#sha256;
  }

  /** Hashes the line now, if not yet, and lets go of its bytes: for a mark that is kept. */
  seal(): this {
    if (this.#head !== undefined) {
      this.#sha256 = sha256(this.#head);
      this.#head = undefined; // they may share the memory of a whole read chunk, or of a long line
    }
    return this;
  }

  /**
   * Whether `file` still holds, just before `offset`, the line this mark was taken after: a newline at
   * `offset - 1` and the line's bytes hashing as they did. With an offset only, the newline only.
   */
  async heldBy(file: FileHandle): Promise<boolean> {
    if (this.offset === 0) return true;
    const [before] = await readAt(file, this.offset - 1, this.offset);
    if (before !== NEWLINE) return false;
    const start = this.lastLineStart;
    if (start === undefined) return true;
    const head = await readAt(file, start, Math.min(this.offset - 1, start + CHECK_BYTES));
    return sha256(head) === this.lastLineSha256;
  }

  toJSON(): { offset: number; lastLineStart?: number; lastLineSha256?: string | undefined } {
    const { offset, lastLineStart, lastLineSha256 } = this;
    return lastLineStart === undefined ? { offset } : { offset, lastLineStart, lastLineSha256 };
  }
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The bytes `from`..`to` of `file`; fewer if it ends before `to`. */
export async function readAt(file: FileHandle, from: number, to: number): Promise<Buffer> {
  const bytes = Buffer.allocUnsafe(Math.max(0, to - from));
  let got = 0;
  while (got < bytes.length) {
    const { bytesRead } = await file.read(bytes, got, bytes.length - got, from + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return bytes.subarray(0, got);
}
