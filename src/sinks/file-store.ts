import { join } from 'node:path';
import { defaultIo, type StoreIo, type StoreOptions } from './file-io.ts';
import { DayFiles } from './file-names.ts';
import type { OpenFile, Unfinished } from './file-open.ts';
import {
  appendSynced,
  checkDayFile,
  cutBack,
  followed,
  openDayFile,
  openFile,
  sameFile,
} from './file-open.ts';
import { WriteProbe } from './file-probe.ts';
import { CommitQueue, type Pending } from './file-queue.ts';
import { makeDirectory, repairStore, setAsideTornTail, type TornLine } from './file-repair.ts';
import type { StoreLock } from './store-lock.ts';

/**
 * The default store: every accepted event appended as one JSON line to `<dir>/events-YYYY-MM-DD.ndjson`
 * (UTC day). `append` resolves only once the line is on disk (written and fdatasync'd), so a 200 means
 * durable. Group commit: lines that arrive while one write+sync is under way share the next one, so under
 * load one sync carries many events and throughput does not collapse to the disk's sync rate.
 *
 * A write that fails (a full disk, an I/O error) or comes up short is cut off, back to the last whole
 * line, before its events are refused: a partial line never precedes a good one. One process writes a
 * store (store-lock.ts).
 */
export class NdjsonStore {
  readonly dir: string;
  readonly #io: StoreIo;
  readonly #days: DayFiles;
  readonly #queue: CommitQueue;
  readonly #stuckMs: number;
  /** When the commit under way began (performance.now()), if one is. */
  #committing: number | undefined;
  #flushing: Promise<void> | undefined;
  #file: OpenFile | undefined;
  /** Where the whole lines end in files closed with part of a line after them (their cut failed). */
  readonly #unfinished = new Map<string, Unfinished>();
  #closed = false;
  #lock: StoreLock | undefined;
  #writable = true;
  #records = 0;
  #commits = 0;
  #failures = 0;
  /** Files whose torn tail start-up could not set aside (a full disk): done before they are written. */
  readonly #repairs = new Map<string, number>();
  readonly #probe: WriteProbe;

  private constructor(dir: string, io: StoreIo, options: StoreOptions) {
    this.dir = dir;
    this.#io = io;
    this.#days = new DayFiles(dir, options.worker === undefined ? '' : `-w${options.worker}`);
    this.#queue = new CommitQueue(options.maxQueuedChars ?? MAX_QUEUED_CHARS);
    this.#stuckMs = options.stuckMs ?? STUCK_MS;
    const state = () => ({
      down: !this.#writable && !this.#closed,
      busy: this.#flushing !== undefined,
      failures: this.#failures,
    });
    const writable = () => {
      this.#writable = true;
    };
    const check = () => checkDayFile(io, dir, this.fileFor(new Date()), () => this.#lock?.renew?.());
    this.#probe = new WriteProbe(io, join(dir, `.probe${this.#days.suffix}`), state, writable, check);
  }

  /** Records made durable, the commits that carried them (fewer: group commit), and the commits that failed. */
  get stats(): { readonly records: number; readonly commits: number; readonly failures: number } {
    return { records: this.#records, commits: this.#commits, failures: this.#failures };
  }

  /**
   * False from a failed write until one succeeds, while a commit has been under way for `stuckMs`, and while
   * the lines waiting are at their bound: no event can be stored now (the health path says so). Every
   * append still tries its write, and while none comes a probe does (WriteProbe).
   */
  get writable(): boolean {
    const stuck = this.#committing !== undefined && performance.now() - this.#committing > this.#stuckMs;
    return this.#writable && !stuck && !this.#queue.full && this.#lock?.lost?.() === undefined;
  }

  /** Called after each group commit with its write + fdatasync time (seconds) and its events: for metrics. */
  onCommit: ((seconds: number, events: number) => void) | undefined;
  /** Partial lines a crash left, set aside; `onRecovered` hears of those set aside after start-up. */
  readonly recovered: TornLine[] = [];
  onRecovered: ((torn: TornLine) => void) | undefined;
  onTorn: ((torn: TornLine) => void) | undefined; // a partial line set aside as it runs (a file cut mid-line)
  readonly #torn = (torn: TornLine) => this.onTorn?.(torn);

  /**
   * Opens (creating if needed) a store in `dir`. A file whose last line was cut short by a crash is
   * repaired first: the fragment moves to `<file>.torn` and the file is truncated to its last whole
   * line, so the next event starts on a line of its own instead of being glued to the fragment.
   * Then today's file is opened for appending, so a directory the store cannot write to (read-only,
   * not permitted) is refused here, at start-up, rather than on every event.
   */
  static async open(dir: string, options: StoreOptions = {}): Promise<NdjsonStore> {
    const io = options.io ?? defaultIo();
    const store = new NdjsonStore(dir, io, options);
    const own = (name: string) =>
      options.worker === undefined || name.endsWith(`${store.#days.suffix}.ndjson`);
    // Locked before repair, which must not cut another writer's line (a worker writes under its primary's).
    await makeDirectory(io, dir);
    // A worker of --workers writes under its primary's lock (`lockedFor`); a host's own workers take none.
    const holder = options.worker === undefined ? process.pid : options.lockedFor;
    store.#lock = holder === undefined ? undefined : io.lock?.(dir, holder);
    try {
      store.recovered.push(...(await repairStore(dir, { io, only: own, deferred: store.#repairs })));
      await store.#probe.removeLeftovers().catch(() => {}); // a readdir that failed: the first probe's
      // A full disk is a state the store recovers from, not a reason to refuse to start.
      store.#writable = store.#repairs.size === 0;
      if (!store.#writable) store.#probe.start();
      const today = store.fileFor(new Date());
      if (!store.#repairs.has(today)) await store.#open(today);
    } catch (err) {
      await store.#probe.stop();
      store.#lock?.release();
      throw err;
    }
    return store;
  }

  /** The file a record received at `at` goes to. */
  fileFor(at: Date): string {
    return this.#days.at(at);
  }

  /** Appends one record; resolves once it is durable. `record` must serialise to one line (JSON does). */
  append(record: object, at: Date = new Date()): Promise<void> {
    return this.appendLine(JSON.stringify(record), at);
  }

  /**
   * Appends one line of JSON text, which must hold no line break and no zero byte (JSON text never does:
   * start-up repair reads one in a recent file as a hole a power cut left); resolves once it is durable.
   */
  appendLine(json: string, at: Date = new Date()): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('the event store is closed'));
    if (json.includes('\n') || json.includes('\0')) {
      return Promise.reject(new TypeError('a stored line may hold no line break and no zero byte'));
    }
    const line = `${json}\n`;
    return new Promise((resolve, reject) => {
      this.#queue.add({ file: this.fileFor(at), line, resolve, reject });
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
    await this.#probe.stop();
    await this.flush();
    await this.#release();
    this.#lock?.release();
  }

  async #drain(): Promise<void> {
    if (this.#io.blocking) await this.#queue.quiet();
    while (this.#queue.length > 0) {
      for (const group of this.#queue.take()) await this.#commit((group[0] as Pending).file, group);
    }
    this.#flushing = undefined;
  }

  async #commit(name: string, group: Pending[]): Promise<void> {
    let file: OpenFile | undefined;
    // From its first step: a disk that does not answer may hold the stat or the open as well as the sync.
    this.#committing = performance.now();
    try {
      file = await this.#open(name);
      const lost = this.#lock?.lost?.(); // another endpoint writes here now (its lock): refused
      if (lost !== undefined) throw lost;
      // Never write after a partial line: cut it off first, or refuse.
      if (file.dirty) await this.#cut(file);
      let text = '';
      for (const pending of group) text += pending.line;
      const bytes = Buffer.from(text);
      const started = performance.now();
      await appendSynced(this.#io, file, bytes, this.#torn);
      this.#writable = true;
      this.#commits++;
      this.#records += group.length;
      this.onCommit?.((performance.now() - started) / 1000, group.length);
      for (const pending of group) pending.resolve();
    } catch (err) {
      this.#writable = false;
      this.#probe.start();
      this.#failures++;
      // Cut the failed bytes off before anyone hears of the failure (the sender retries at once). If the
      // cut fails too, the file stays dirty: the next commit cuts again before writing, or refuses.
      if (file?.dirty) await this.#cut(file).catch(() => {});
      for (const pending of group) pending.reject(err);
    } finally {
      this.#committing = undefined;
    }
  }

  /** Truncates `file` back to its last whole line, durably (cutBack). */
  async #cut(file: OpenFile): Promise<void> {
    await cutBack(this.#io, file, this.#torn);
    this.#unfinished.delete(file.name);
  }

  async #open(name: string): Promise<OpenFile> {
    const open = this.#file; // (a host's own io without `identity` is not checked: it predates the check)
    const now = open?.name === name ? await this.#io.identity?.(name) : undefined;
    if (open?.name === name && (this.#io.identity === undefined || sameFile(open.id, now))) {
      await followed(this.#io, open, now, this.#torn);
      return open;
    }
    // A new day, or the file at its path is not the one open: removed, renamed (a rotation), replaced.
    // Lines written to that one would be acknowledged and lost to whoever reads the store.
    await this.#release();
    const scan = this.#repairs.get(name);
    const torn = scan === undefined ? undefined : await setAsideTornTail(this.#io, name, scan);
    this.#repairs.delete(name);
    if (torn !== undefined) {
      this.recovered.push(torn);
      this.onRecovered?.(torn);
    }
    const lock = this.#lock;
    const opened = await openDayFile(this.#io, this.dir, name, lock && (() => lock.renew?.()));
    const file = openFile(name, opened, this.#unfinished.get(name));
    this.#unfinished.delete(name);
    this.#file = file;
    await followed(this.#io, file, opened, this.#torn); // one that ends in part of a line: set aside
    return file;
  }

  /** Closes the current file, cut back first if a failed write left part of a line in it. */
  async #release(): Promise<void> {
    const file = this.#file;
    if (file === undefined) return;
    this.#file = undefined;
    // A cut that fails leaves it last in its file: cut at the file's next open, or by start-up repair.
    if (file.dirty) await this.#cut(file).catch(() => this.#unfinished.set(file.name, file));
    await this.#io.close(file.fd);
  }
}

const MAX_QUEUED_CHARS = 32 * 1024 * 1024; // 32 Mi characters (~32-64 MiB) of lines waiting for the disk
const STUCK_MS = 5_000; // 5 s: a commit under way this long means the disk does not answer
