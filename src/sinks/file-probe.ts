import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { StoreIo } from './file-io.ts';
import { writeAll } from './file-io.ts';

// While the store cannot write, a write a second into a file of its own: the store turns writable (and
// health ok) once the disk takes one, even when no event comes to try (a balancer took the endpoint
// out of its pool for its failing health, and would never send one).

const PROBE_MS = 1_000; // 1 s between probes
// Room for a group of events, not one byte: a disk with a few bytes free still refuses every commit.
const PROBE_BYTES = new Uint8Array(64 * 1024); // 64 KiB
const STOP_WAIT_MS = 2_000; // 2 s at most, on close, for a probe under way

/** What the probe reads of its store, now. */
export interface ProbedState {
  /** The store cannot write, and is open. */
  readonly down: boolean;
  /** A commit is under way: it decides, not the probe. */
  readonly busy: boolean;
  /** Commits failed so far. */
  readonly failures: number;
}

export class WriteProbe {
  readonly #io: StoreIo;
  readonly #path: string;
  readonly #state: () => ProbedState;
  readonly #writable: () => void;
  readonly #check: () => Promise<void>;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #leftoversRemoved = false;

  /**
   * Probes `path` while `state()` is down; `writable()` hears a probe that succeeded. `check` rejects
   * when the store could not commit for another cause than its disk (its lock not where its files are,
   * the day's file a link or another user's): the probe fails then.
   */
  constructor(
    io: StoreIo,
    path: string,
    state: () => ProbedState,
    writable: () => void,
    check: () => Promise<void>,
  ) {
    this.#io = io;
    this.#path = path;
    this.#state = state;
    this.#writable = writable;
    this.#check = check;
  }

  /** Probes in a second, unless a probe is already due or under way (which goes on as long as needed). */
  start(): void {
    if (this.#stopped || this.#timer !== undefined || this.#running !== undefined) return;
    this.#timer = setTimeout(() => this.#run(), PROBE_MS).unref();
  }

  /**
   * No more probes; resolves once one under way has ended (it touches the store's directory), or after
   * STOP_WAIT_MS if it has not: a disk that does not answer must not hold the store's close for good.
   */
  stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#running === undefined) return Promise.resolve();
    return Promise.race([this.#running, delay(STOP_WAIT_MS, undefined, { ref: false })]);
  }

  #run(): void {
    this.#timer = undefined;
    const before = this.#state();
    if (this.#stopped || !before.down) return;
    if (before.busy) {
      this.start();
      return;
    }
    this.#running = this.#write().then((ok) => {
      this.#running = undefined;
      const now = this.#state();
      if (this.#stopped || !now.down) return;
      // A commit that failed since the probe began knows better than it: probe again.
      if (ok && !now.busy && now.failures === before.failures) this.#writable();
      else this.start();
    });
  }

  /**
   * Writes and syncs the probe's bytes: whether the disk took them. Each probe writes a file made for it
   * under a name no one can foresee (nothing planted where others may write in --out is ever opened: a
   * link, a FIFO, a hard link to a file that O_TRUNC would empty), and removes it, so that its room goes
   * back to the events whether or not the disk took it all. A store io without `unlink` (a host's own)
   * writes one file again and again, emptied after each probe.
   */
  async #write(): Promise<boolean> {
    const io = this.#io;
    const path = io.unlink === undefined ? this.#path : `${this.#path}-${randomBytes(6).toString('hex')}`;
    let fd: number | undefined;
    try {
      await this.#check();
      await this.removeLeftovers();
      fd = await io.open(path, io.unlink === undefined ? 'w' : 'wx');
      await writeAll(io, fd, PROBE_BYTES);
      await io.fdatasync(fd);
      return true;
    } catch {
      return false;
    } finally {
      if (fd !== undefined) {
        if (io.unlink === undefined) await io.ftruncate(fd, 0).catch(() => {});
        await io.close(fd).catch(() => {});
        await io.unlink?.(path).catch(() => {});
      }
    }
  }

  /**
   * Removes the files of probes that a process killed during one left in the directory: at start-up, and
   * by a first probe when that failed. Looked for once: this process's probes remove their own.
   */
  async removeLeftovers(): Promise<void> {
    const io = this.#io;
    if (this.#leftoversRemoved || io.unlink === undefined) return;
    const dir = dirname(this.#path);
    const own = new RegExp(`^${basename(this.#path).replace(/[.]/g, '\\.')}-[0-9a-f]{12}$`);
    for (const name of await io.readdir(dir)) {
      if (own.test(name)) await io.unlink(join(dir, name)).catch(() => {});
    }
    this.#leftoversRemoved = true;
  }
}
