import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { keyFingerprint } from './auth.ts';
import type { Context, Handlers } from './dispatch.ts';

interface Pending {
  readonly file: string;
  readonly line: string;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/**
 * The default store: every accepted event appended as one JSON line to `<dir>/events-YYYY-MM-DD.ndjson`
 * (UTC day). `append` resolves only once the line is on disk (written and fdatasync'd), so a 200 means
 * durable. Group commit: lines that arrive while one write+sync is under way share the next one, so under
 * load one sync carries many events and throughput does not collapse to the disk's sync rate.
 */
export class NdjsonStore {
  readonly dir: string;
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;
  #file: { name: string; handle: FileHandle } | undefined;
  #torn = false;
  #closed = false;
  #records = 0;
  #commits = 0;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Records made durable, and the write+sync rounds that carried them (fewer: group commit). */
  get stats(): { readonly records: number; readonly commits: number } {
    return { records: this.#records, commits: this.#commits };
  }

  /** Opens (creating if needed) a store in `dir`. */
  static async open(dir: string): Promise<NdjsonStore> {
    await mkdir(dir, { recursive: true });
    return new NdjsonStore(dir);
  }

  /** The file a record received at `at` goes to. */
  fileFor(at: Date): string {
    return join(this.dir, `events-${at.toISOString().slice(0, 10)}.ndjson`);
  }

  /** Appends one record; resolves once it is durable. `record` must serialise to one line (JSON does). */
  append(record: object, at: Date = new Date()): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('the event store is closed'));
    const line = `${JSON.stringify(record)}\n`;
    return new Promise((resolve, reject) => {
      this.#queue.push({ file: this.fileFor(at), line, resolve, reject });
      this.#flushing ??= this.#drain();
    });
  }

  /** Resolves once everything appended so far is durable (or has failed). */
  async flush(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing;
  }

  /** Flushes, then closes the file. Appends after this are refused. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.flush();
    await this.#file?.handle.close();
    this.#file = undefined;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue;
      this.#queue = [];
      // Records are grouped by file in arrival order; a batch spans two files only at midnight UTC.
      let start = 0;
      while (start < batch.length) {
        const file = (batch[start] as Pending).file;
        let end = start + 1;
        while (end < batch.length && (batch[end] as Pending).file === file) end++;
        await this.#commit(file, batch.slice(start, end));
        start = end;
      }
    }
    this.#flushing = undefined;
  }

  async #commit(file: string, group: Pending[]): Promise<void> {
    try {
      const handle = await this.#handleFor(file);
      // After a failed write the file may end in part of a line: start on a fresh one, so the torn
      // fragment stays a line of its own that a reader can set aside.
      const prefix = this.#torn ? '\n' : '';
      let text = prefix;
      for (const pending of group) text += pending.line;
      this.#torn = true;
      await handle.appendFile(text);
      await handle.datasync();
      this.#torn = false;
      this.#commits++;
      this.#records += group.length;
      for (const pending of group) pending.resolve();
    } catch (err) {
      for (const pending of group) pending.reject(err);
    }
  }

  async #handleFor(name: string): Promise<FileHandle> {
    if (this.#file?.name === name) return this.#file.handle;
    const previous = this.#file;
    this.#file = undefined;
    await previous?.handle.close();
    const handle = await open(name, 'a');
    this.#file = { name, handle };
    return handle;
  }
}

/** The line the default store keeps for each accepted event. */
export interface StoredRecord {
  readonly receivedAt: string;
  /** A short hash of the API key: which customer sent it, without keeping the key itself. */
  readonly source: string;
  readonly settings: Readonly<Record<string, unknown>>;
  /** The event exactly as received. */
  readonly event: Readonly<Record<string, unknown>>;
}

/** Handlers for every event type that append the event to `store` before answering 200. */
export function storeHandlers(store: NdjsonStore): Handlers {
  const save = (_event: unknown, ctx: Context) => {
    const record: StoredRecord = {
      receivedAt: ctx.receivedAt.toISOString(),
      source: keyFingerprint(ctx.apiKey),
      settings: ctx.settings,
      event: ctx.original,
    };
    return store.append(record, ctx.receivedAt);
  };
  return { identify: save, track: save, page: save, screen: save, group: save, alias: save, delete: save };
}
