import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { keyFingerprint } from './auth.ts';
import type { Context, Handlers } from './dispatch.ts';
import { nodeIo, type StoreIo, writeAll } from './fileio.ts';

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
  readonly #io: StoreIo;
  #queue: Pending[] = [];
  #flushing: Promise<void> | undefined;
  #file: { name: string; fd: number } | undefined;
  #torn = false;
  #closed = false;
  #records = 0;
  #commits = 0;
  #day = -1;
  #dayFile = '';

  private constructor(dir: string, io: StoreIo) {
    this.dir = dir;
    this.#io = io;
  }

  /** Records made durable, and the write+sync rounds that carried them (fewer: group commit). */
  get stats(): { readonly records: number; readonly commits: number } {
    return { records: this.#records, commits: this.#commits };
  }

  /** Called after each group commit with its write + fdatasync time (seconds) and its events: for metrics. */
  onCommit: ((seconds: number, events: number) => void) | undefined;

  /** Partial last lines found at start-up and set aside (a crash in the middle of a write). */
  readonly recovered: TornLine[] = [];

  /**
   * Opens (creating if needed) a store in `dir`. A file whose last line was cut short by a crash is
   * repaired first: the fragment moves to `<file>.torn` and the file is truncated to its last whole
   * line, so the next event starts on a line of its own instead of being glued to the fragment.
   */
  static async open(dir: string, options: { readonly io?: StoreIo } = {}): Promise<NdjsonStore> {
    const io = options.io ?? nodeIo;
    await mkdir(dir, { recursive: true });
    const store = new NdjsonStore(dir, io);
    for (const name of (await readdir(dir)).sort()) {
      if (!FILE_RE.test(name)) continue;
      const torn = await setAsideTornTail(io, join(dir, name));
      if (torn !== undefined) store.recovered.push(torn);
    }
    return store;
  }

  /** The file a record received at `at` goes to. */
  fileFor(at: Date): string {
    const day = Math.floor(at.getTime() / DAY_MS);
    if (day !== this.#day) {
      this.#day = day;
      this.#dayFile = join(this.dir, `events-${at.toISOString().slice(0, 10)}.ndjson`);
    }
    return this.#dayFile;
  }

  /** Appends one record; resolves once it is durable. `record` must serialise to one line (JSON does). */
  append(record: object, at: Date = new Date()): Promise<void> {
    return this.appendLine(JSON.stringify(record), at);
  }

  /** Appends one line of JSON text, which must hold no line break; resolves once it is durable. */
  appendLine(json: string, at: Date = new Date()): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('the event store is closed'));
    const line = `${json}\n`;
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
    const file = this.#file;
    this.#file = undefined;
    if (file !== undefined) await this.#io.close(file.fd);
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
      const fd = await this.#fdFor(file);
      // After a failed write the file may end in part of a line: start on a fresh one, so the torn
      // fragment stays a line of its own that a reader can set aside.
      const prefix = this.#torn ? '\n' : '';
      let text = prefix;
      for (const pending of group) text += pending.line;
      this.#torn = true;
      const started = performance.now();
      await writeAll(this.#io, fd, Buffer.from(text));
      await this.#io.fdatasync(fd);
      this.#torn = false;
      this.#commits++;
      this.#records += group.length;
      this.onCommit?.((performance.now() - started) / 1000, group.length);
      for (const pending of group) pending.resolve();
    } catch (err) {
      for (const pending of group) pending.reject(err);
    }
  }

  async #fdFor(name: string): Promise<number> {
    if (this.#file?.name === name) return this.#file.fd;
    const previous = this.#file;
    this.#file = undefined;
    if (previous !== undefined) await this.#io.close(previous.fd);
    const fd = await this.#io.open(name, 'a');
    this.#file = { name, fd };
    return fd;
  }
}

const FILE_RE = /^events-\d{4}-\d{2}-\d{2}\.ndjson$/;
const NEWLINE = 0x0a;
const DAY_MS = 24 * 60 * 60 * 1000;
const TAIL_CHUNK = 64 * 1024; // 64 KiB read at a time, from the end, to find the last newline

export interface TornLine {
  /** The store file that ended in a partial line. */
  readonly file: string;
  /** Where its bytes were moved. */
  readonly movedTo: string;
  readonly bytes: number;
}

/** Moves a partial last line (no closing newline) out of `file`; `undefined` if the file ends cleanly. */
async function setAsideTornTail(io: StoreIo, file: string): Promise<TornLine | undefined> {
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
    await io.ftruncate(fd, keep);
    await io.fdatasync(fd);
    return { file, movedTo, bytes: fragment.length };
  } finally {
    await io.close(fd);
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
  const sources = new Map<string, string>();
  const settingsJson = new WeakMap<object, string>();
  const save = (_event: unknown, ctx: Context) => {
    // Serialised by hand around the parts that are already JSON: the event's own text (when it holds no
    // line break: JSON only has them as whitespace), the settings (one string per customer). The same
    // line JSON.stringify would give for a record of StoredRecord's shape, without the cost.
    let source = sources.get(ctx.apiKey);
    if (source === undefined) {
      if (sources.size >= 1024) sources.clear();
      source = keyFingerprint(ctx.apiKey);
      sources.set(ctx.apiKey, source);
    }
    let settings = settingsJson.get(ctx.settings);
    if (settings === undefined) {
      settings = JSON.stringify(ctx.settings);
      settingsJson.set(ctx.settings, settings);
    }
    const raw = ctx.raw;
    const event = raw !== undefined && !LINE_BREAK_RE.test(raw) ? raw.trim() : JSON.stringify(ctx.original);
    const line = `{"receivedAt":"${ctx.receivedAt.toISOString()}","source":"${source}","settings":${settings},"event":${event}}`;
    return store.appendLine(line, ctx.receivedAt);
  };
  return { identify: save, track: save, page: save, screen: save, group: save, alias: save, delete: save };
}

const LINE_BREAK_RE = /[\n\r]/;
