import { constants } from 'node:buffer';
import { open } from 'node:fs/promises';

// Whole lines out of a file that may be being appended to: only bytes up to a newline count, so a line
// still being written (its newline not there yet) is not seen until it is complete.

const NEWLINE = 0x0a;
const CHUNK_BYTES = 64 * 1024; // 64 KiB read at a time; longer lines are assembled from several reads
// The longest string V8 makes (~512 MiB on 64-bit): the endpoint cannot have parsed an event that long,
// so a "line" past it is no line the store wrote (a stray file, no newline anywhere), and is refused
// rather than held in memory without end. Stored events are at most --max-body-bytes (512 KiB by default).
const MAX_LINE_BYTES = constants.MAX_STRING_LENGTH;

export interface RawLine {
  /** Where its first byte is in the file. */
  readonly offset: number;
  /** Just past its newline: where the next line starts. */
  readonly end: number;
  /** The line without its newline. */
  readonly text: string;
}

/**
 * The whole lines of `path` between byte `from` (the start of a line) and byte `to`, in order, read in
 * chunks. Bytes after the last newline before `to` are left for a later read.
 */
export async function* linesIn(path: string, from: number, to: number): AsyncGenerator<RawLine> {
  const handle = await open(path, 'r');
  try {
    let start = from; // of the line being assembled
    let pos = from; // next byte to read
    let parts: Buffer[] = [];
    let partBytes = 0;
    while (pos < to) {
      const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, to - pos));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, pos);
      if (bytesRead === 0) break; // the file was cut back meanwhile: nothing more to read now
      const data = chunk.subarray(0, bytesRead);
      let at = 0;
      for (let nl = data.indexOf(NEWLINE); nl !== -1; nl = data.indexOf(NEWLINE, at)) {
        const piece = data.subarray(at, nl);
        const bytes = partBytes === 0 ? piece : Buffer.concat([...parts, piece]);
        parts = [];
        partBytes = 0;
        const end = pos + nl + 1;
        yield { offset: start, end, text: bytes.toString('utf8') };
        start = end;
        at = nl + 1;
      }
      if (at < data.length) {
        parts.push(data.subarray(at));
        partBytes += data.length - at;
        if (partBytes > MAX_LINE_BYTES) {
          throw new Error(
            `${path}: no newline in the ${partBytes} bytes from byte ${start}: not a store file`,
          );
        }
      }
      pos += bytesRead;
    }
  } finally {
    await handle.close();
  }
}

/** Whether byte `offset` of `path` starts a line: the file's start, or just after a newline. */
export async function startsLine(path: string, offset: number): Promise<boolean> {
  if (offset === 0) return true;
  const handle = await open(path, 'r');
  try {
    const byte = Buffer.alloc(1);
    const { bytesRead } = await handle.read(byte, 0, 1, offset - 1);
    return bytesRead === 1 && byte[0] === NEWLINE;
  } finally {
    await handle.close();
  }
}
