import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';

// Reading a certificate, a key or a keys file again on SIGHUP. Only a regular file: at start a named pipe
// is read as any file (`--cert <(vault read ...)`, its writer there), but read again later it has no
// writer, the read never ends, and it would hold the whole process, its requests and signals with it.
// Opened without blocking (a pipe's open waits for a writer), then looked at before a byte is read. Read
// up to a bound: a file of /proc says it is regular and 0 bytes long, and some never end (pagemap).

const FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;
const CHUNK = 512 * 1024;

/** The most a keys file may hold (~3 million keys of the usual length), and a certificate, key or secret. */
export const KEYS_FILE_MAX_BYTES = 128 * 2 ** 20;
export const SMALL_FILE_MAX_BYTES = 2 ** 20;

/**
 * A file named on the command line, read at start up to `maxBytes`: a pipe too (`--cert <(vault read
 * ...)`, its writer there), blocking until its writer is done, as start-up may. Its mode is the
 * descriptor's: the path may name another file by the time anyone looks.
 */
export function readFileUpTo(path: string, maxBytes: number): FileRead {
  const fd = openSync(path, constants.O_RDONLY);
  try {
    const stat = fstatSync(fd);
    const read = new Gathered(stat, maxBytes, false);
    for (let chunk = read.chunk(); read.took(chunk, readSync(fd, chunk)); chunk = read.chunk());
    return { bytes: read.bytes(), mode: stat.mode };
  } finally {
    closeSync(fd);
  }
}

/** A file's bytes, and its mode as the descriptor read showed it (the path's may have changed since). */
export interface FileRead {
  readonly bytes: Buffer;
  readonly mode: number;
}

/**
 * The bytes of the regular file at `path`, and its mode; an error saying so when it is anything else or
 * too large. Read off the event loop: a keys file of a million keys is ~40 MB, which read in one
 * call held every request for ~140 ms on this machine, and for as long as a slow disk takes. Read 512 KiB
 * at a time on Node's thread pool, the loop free between the reads.
 */
export async function readRegularFileAsync(path: string, maxBytes: number): Promise<FileRead> {
  const file = await open(path, FLAGS);
  try {
    const stat = await file.stat();
    const read = new Gathered(stat, maxBytes, true);
    for (
      let chunk = read.chunk();
      read.took(chunk, (await file.read(chunk)).bytesRead);
      chunk = read.chunk()
    );
    return { bytes: read.bytes(), mode: stat.mode };
  } finally {
    await file.close();
  }
}

/**
 * A file's bytes as they are read, refused past `maxBytes` whatever size it said it had. Read into one
 * buffer of the size it says (a byte more, to see it did not grow), so nothing is copied after: joining
 * a million keys' 40 MB from chunks held the loop ~130 ms. One that says 0 (/proc) is read in chunks.
 */
class Gathered {
  readonly #maxBytes: number;
  readonly #whole: Buffer;
  readonly #chunks: Buffer[] = [];
  #total = 0;

  constructor(stat: Stats, maxBytes: number, regularOnly: boolean) {
    if (regularOnly && !stat.isFile())
      throw new Error('not a regular file: a pipe or a device could block the process for good');
    this.#maxBytes = maxBytes;
    if (stat.size > maxBytes) this.#tooLarge();
    // Of /proc, reads of a byte may be refused (pagemap's are of 8): none into a buffer of 1.
    this.#whole = Buffer.allocUnsafeSlow(stat.size === 0 ? 0 : stat.size + 1);
  }

  /** Where the next read goes: what is left of the whole buffer, else a chunk of its own. */
  chunk(): Buffer {
    // 512 KiB a read: one read of 40 MB held the one core the loop shares with the thread pool ~130 ms.
    const total = this.#total;
    return total < this.#whole.length
      ? this.#whole.subarray(total, total + CHUNK)
      : Buffer.allocUnsafe(CHUNK);
  }

  /** Whether there may be more: `read` bytes of `chunk` were read, none at the end of the file. */
  took(chunk: Buffer, read: number): boolean {
    if (read === 0) return false;
    // Past the size it said: the file grew as it was read, or says 0 (/proc).
    if (chunk.buffer !== this.#whole.buffer) this.#chunks.push(chunk.subarray(0, read));
    this.#total += read;
    if (this.#total > this.#maxBytes) this.#tooLarge();
    return true;
  }

  bytes(): Buffer {
    const whole = this.#whole.subarray(0, Math.min(this.#total, this.#whole.length));
    return this.#chunks.length === 0 ? whole : Buffer.concat([whole, ...this.#chunks], this.#total);
  }

  #tooLarge(): never {
    throw new Error(`larger than ${this.#maxBytes / 2 ** 20} MiB, the most such a file may hold`);
  }
}
