import { open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

// Where a reader is in each store file, kept in a file so that a reader started again carries on:
// `{ "files": { "events-2026-11-30-w1.ndjson": 12345, … } }`, the byte just past the last line done.

/** A checkpoint file that cannot be used: not readable, not JSON, or not a checkpoint's shape. */
export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

/** At most one save a second while lines are being done (a save costs two fsyncs). */
const SAVE_EVERY_MS = 1000;

/**
 * Each file's position: the byte just past the last line done (0 for a file not seen). Kept in memory;
 * `save` writes them to the checkpoint file, if there is one, atomically: a temp file written and
 * fsync'd, renamed over the checkpoint, then its directory fsync'd, so a crash at any moment leaves the
 * old checkpoint or the new one, never an empty or half-written one.
 */
export class Positions {
  readonly #path: string | undefined;
  readonly #files: Map<string, number>;
  /** Changed since the last save (or never saved). */
  #unsaved: boolean;
  #savedAt = 0;

  private constructor(path: string | undefined, files: Map<string, number>, unsaved: boolean) {
    this.#path = path;
    this.#files = files;
    this.#unsaved = unsaved;
  }

  /**
   * The positions `path` holds, or none for a file that does not exist yet (it is created at the first
   * save); without `path`, every file from its start and nothing saved. Rejects with a CheckpointError.
   */
  static async load(path: string | undefined): Promise<Positions> {
    if (path === undefined) return new Positions(undefined, new Map(), false);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return new Positions(path, new Map(), true);
      throw new CheckpointError(`cannot read the checkpoint ${path}: ${(err as Error).message}`);
    }
    return new Positions(path, parseCheckpoint(path, text), false);
  }

  get(file: string): number {
    return this.#files.get(file) ?? 0;
  }

  set(file: string, position: number): void {
    if (this.#files.get(file) === position) return;
    this.#files.set(file, position);
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
      await replaceFile(this.#path, `${JSON.stringify({ files }, null, 2)}\n`);
    } catch (err) {
      throw new CheckpointError(`cannot write the checkpoint ${this.#path}: ${(err as Error).message}`);
    }
    this.#unsaved = false;
    this.#savedAt = performance.now();
  }
}

function parseCheckpoint(path: string, text: string): Map<string, number> {
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
  const positions = new Map<string, number>();
  for (const [name, position] of Object.entries(files)) {
    if (!Number.isSafeInteger(position) || (position as number) < 0) {
      throw bad(`gives ${JSON.stringify(position)} for ${name}, not a byte offset`);
    }
    positions.set(name, position as number);
  }
  return positions;
}

/** Replaces `path` with `text` atomically and durably (temp file, fsync, rename, fsync the directory). */
async function replaceFile(path: string, text: string): Promise<void> {
  // One fixed temp name: a crash between write and rename leaves it behind, and the next save reuses it.
  const temp = `${path}.tmp`;
  const file = await open(temp, 'w');
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, path);
  // The rename is durable only once the directory is: without this a power cut could bring back the
  // checkpoint before it, and lines done since would be done again (allowed, but avoidable).
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
