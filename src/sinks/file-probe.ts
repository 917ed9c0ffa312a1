import { setTimeout as delay } from 'node:timers/promises';
import type { StoreIo } from './file-io.ts';
import { writeAll } from './file-io.ts';
import { regular } from './file-owner.ts';

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
   * Writes and syncs the probe's bytes: whether the disk took them. The file is emptied again either way:
   * a probe that failed half-way would keep the room it took, which may be all the events had.
   */
  async #write(): Promise<boolean> {
    let fd: number | undefined;
    try {
      await this.#check();
      fd = await this.#open();
      await writeAll(this.#io, fd, PROBE_BYTES);
      await this.#io.fdatasync(fd);
      return true;
    } catch {
      return false;
    } finally {
      if (fd !== undefined) {
        await this.#io.ftruncate(fd, 0).catch(() => {});
        await this.#io.close(fd).catch(() => {});
      }
    }
  }

  /**
   * The probe's own file, emptied and open for writing. Anything else found at its name (a link or a
   * FIFO, planted where others may write in --out) is removed and a file made in its place: a probe that
   * could not write there would keep health unavailable until an event came, and none is written through
   * a link or into a FIFO.
   */
  async #open(): Promise<number> {
    const io = this.#io;
    const fd = await io.open(this.#path, 'w').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ELOOP' || err.code === 'ENXIO') return undefined;
      throw err;
    });
    if (fd !== undefined) {
      const stat = await io.fstat(fd).catch(async (err) => {
        await io.close(fd).catch(() => {});
        throw err;
      });
      if (regular(stat.mode)) return fd;
      await io.close(fd);
    }
    if (io.unlink === undefined)
      throw Object.assign(new Error(`${this.#path} is not a file`), { code: 'EEXIST' });
    await io.unlink(this.#path);
    return io.open(this.#path, 'w');
  }
}
