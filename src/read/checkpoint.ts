import { dirname } from 'node:path';
import { nodeIo, readAt, type StoreIo, writeAll } from '../sinks/file-io.ts';
import { othersOwn, regular } from '../sinks/file-owner.ts';
import { Mark } from './mark.ts';

// Where a reader is in each store file, kept in a file so that a reader started again carries on:
// `{ "files": { "events-2026-11-30-w1.ndjson": { "offset": 12345, "lastLineStart": 12000,
// "lastLineSha256": "…" }, … } }`: the byte just past the last line done, and that line (see mark.ts).
// A bare offset, `"events-…": 12345`, as older versions wrote, is read as an offset without its line.

/** A checkpoint file that cannot be used: not readable, not JSON, or not a checkpoint's shape. */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

/** At most one save a second while lines are being done (a save costs two fsyncs). */
const SAVE_EVERY_MS = 1000;

/**
 * Each file's position: a mark just past the last line done (`Mark.START` for a file not seen). Kept in
 * memory; `save` writes them to the checkpoint file, if there is one, atomically: a temp file written and
 * fsync'd, renamed over the checkpoint, then its directory fsync'd, so a crash at any moment leaves the
 * old checkpoint or the new one, never an empty or half-written one.
 */
export class Positions {
  readonly #path: string | undefined;
  readonly #io: StoreIo;
  readonly #files: Map<string, Mark>;
  /**
   * Changed since the last save, or never saved: a checkpoint, new or read, is written at the first save,
   * so that one that cannot be replaced fails at start, not after a second of lines the next run would
   * print again.
   */
  #unsaved = true;
  #savedAt = 0;

  private constructor(path: string | undefined, io: StoreIo, files: Map<string, Mark>) {
    this.#path = path;
    this.#io = io;
    this.#files = files;
  }

  /**
   * The positions `path` holds, or none for a file that does not exist yet (it is created at the first
   * save); without `path`, every file from its start and nothing saved. Rejects with a CheckpointError.
   * `io`: the file operations, node's `fs` unless a test gives its own.
   */
  static async load(path: string | undefined, io: StoreIo = nodeIo): Promise<Positions> {
    if (path === undefined) return new Positions(undefined, io, new Map());
    let text: string;
    try {
      text = await readText(io, path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return new Positions(path, io, new Map());
      throw new CheckpointError(`cannot read the checkpoint ${path}: ${(err as Error).message}`);
    }
    return new Positions(path, io, parseCheckpoint(path, text));
  }

  get(file: string): Mark {
    return this.#files.get(file) ?? Mark.START;
  }

  set(file: string, mark: Mark): void {
    if (this.#files.get(file) === mark) return;
    this.#files.set(file, mark);
    this.#unsaved = true;
  }

  /** Saves if anything changed and the last save is a second old or more. */
  async saveIfDue(): Promise<void> {
    if (this.#unsaved && performance.now() - this.#savedAt >= SAVE_EVERY_MS) await this.save();
  }

  /** Saves if anything changed since the last save. */
  async save(): Promise<void> {
    if (this.#path === undefined || !this.#unsaved) return;
    const files = Object.fromEntries([...this.#files].sort(([a], [b]) => (a < b ? -1 : 1)));
    try {
      await replaceFile(this.#io, this.#path, `${JSON.stringify({ files }, null, 2)}\n`);
    } catch (err) {
      throw new CheckpointError(`cannot write the checkpoint ${this.#path}: ${(err as Error).message}`);
    }
    this.#unsaved = false;
    this.#savedAt = performance.now();
  }
}

function parseCheckpoint(path: string, text: string): Map<string, Mark> {
  const bad = (why: string) =>
    new CheckpointError(`the checkpoint ${path} ${why}; remove it to read the store from its start`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad('is not JSON');
  }
  const files = (value as { files?: unknown } | null)?.files;
  if (typeof files !== 'object' || files === null || Array.isArray(files)) {
    throw bad('holds no "files" object');
  }
  const marks = new Map<string, Mark>();
  for (const [name, entry] of Object.entries(files)) {
    const mark = toMark(entry);
    if (mark === undefined) throw bad(`gives ${JSON.stringify(entry)} for ${name}, not a position`);
    marks.set(name, mark);
  }
  return marks;
}

const SHA256_RE = /^[0-9a-f]{64}$/;

/** `{ offset, lastLineStart?, lastLineSha256? }` (both or neither), or a bare offset, as a Mark. */
function toMark(entry: unknown): Mark | undefined {
  const isOffset = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
  if (isOffset(entry)) return new Mark(entry);
  if (typeof entry !== 'object' || entry === null) return undefined;
  const { offset, lastLineStart, lastLineSha256, ...rest } = entry as Record<string, unknown>;
  if (!isOffset(offset) || Object.keys(rest).length > 0) return undefined;
  if (lastLineStart === undefined && lastLineSha256 === undefined) return new Mark(offset);
  if (!isOffset(lastLineStart) || lastLineStart >= offset) return undefined;
  if (typeof lastLineSha256 !== 'string' || !SHA256_RE.test(lastLineSha256)) return undefined;
  return new Mark(offset, lastLineStart, lastLineSha256);
}

/** Replaces `path` with `text` atomically and durably (temp file, fsync, rename, fsync the directory). */
async function replaceFile(io: StoreIo, path: string, text: string): Promise<void> {
  // One fixed temp name: a crash between write and rename leaves it behind, and the next save reuses it.
  // Opened without emptying it ('a'), and emptied only once it is known to be a file of its own: a hard
  // link would share what O_TRUNC empties, and a FIFO with a reader opens as a file would.
  const temp = `${path}.tmp`;
  const notAFile = new Error(`${temp} is not a regular file: remove it`);
  const fd = await io.open(temp, 'a').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENXIO' || err.code === 'EISDIR') throw notAFile;
    if (err.code !== 'ELOOP') throw err;
    throw new Error(
      `${temp} is a symbolic link: remove it (this reader never makes one, and will not write through it)`,
    );
  });
  try {
    const { mode, nlink, uid } = await io.fstat(fd);
    if (!regular(mode)) throw notAFile;
    if (nlink !== undefined && nlink > 1) throw new Error(`${temp} has other names (hard links): remove it`);
    // Renamed into place, it would be the checkpoint, its owner free to move the reader on or back.
    if (othersOwn(uid)) throw new Error(`${temp} is another user's (uid ${uid}): remove it`);
    await io.ftruncate(fd, 0);
    await writeAll(io, fd, Buffer.from(text));
    await io.fdatasync(fd);
  } finally {
    await io.close(fd);
  }
  await io.rename(temp, path).catch((err: NodeJS.ErrnoException) => {
    // Its temp file renamed away under it (another reader saving the same checkpoint), or its directory.
    if (err.code !== 'ENOENT') throw err;
    const why = `is another reader using ${path} (give each its own), or was its directory removed?`;
    throw new Error(`${temp} was taken away as it was saved: ${why}`, { cause: err });
  });
  // The rename is durable only once the directory is: without this a power cut could bring back the
  // checkpoint before it, and lines done since would be done again (allowed, but avoidable).
  await io.syncDirectory(dirname(path));
}

/** A mark for each day file of each writer: ~100 bytes a file, 64 workers' files for years. */
const MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024;

/** The whole of a (small) file as UTF-8 text. */
async function readText(io: StoreIo, path: string): Promise<string> {
  const fd = await io.open(path, 'r');
  try {
    const stat = await io.fstat(fd);
    if (!regular(stat.mode)) throw new Error(`${path} is not a regular file`);
    // Refused unread: a mistaken --from (an image, a log) was read whole into memory only to fail.
    if (stat.size > MAX_CHECKPOINT_BYTES) {
      throw new Error(`${path} is ${stat.size} bytes, more than any checkpoint holds: not one`);
    }
    const bytes = Buffer.alloc(stat.size);
    await readAt(io, fd, bytes, 0);
    return bytes.toString('utf8');
  } finally {
    await io.close(fd);
  }
}
