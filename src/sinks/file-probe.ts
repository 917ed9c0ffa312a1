import type { StoreIo } from './file-io.ts';
import { writeAll } from './file-io.ts';

// While the store cannot write, a write a second into a file of its own: the store turns writable (and
// health ok) once the disk takes one, even when no event comes to try (a balancer took the endpoint
// out of its pool for its failing health, and would never send one).

const PROBE_MS = 1_000; // 1 s between probes
// Room for a group of events, not one byte: a disk with a few bytes free still refuses every commit.
const PROBE_BYTES = new Uint8Array(64 * 1024); // 64 KiB

export class WriteProbe {
  readonly #io: StoreIo;
  readonly #path: string;
  readonly #due: () => boolean;
  readonly #writable: () => void;
  #timer: NodeJS.Timeout | undefined;

  /** Probes `path` while `due()` says so; `writable()` hears the first probe that succeeds. */
  constructor(io: StoreIo, path: string, due: () => boolean, writable: () => void) {
    this.#io = io;
    this.#path = path;
    this.#due = due;
    this.#writable = writable;
  }

  /** Probes in a second, unless a probe is already due. */
  start(): void {
    this.#timer ??= setTimeout(() => this.#run(), PROBE_MS).unref();
  }

  stop(): void {
    clearTimeout(this.#timer);
  }

  async #run(): Promise<void> {
    if (!this.#due()) {
      this.#timer = undefined;
      return;
    }
    const ok = await this.#write();
    this.#timer = undefined;
    if (!this.#due()) return;
    if (ok) this.#writable();
    else this.start();
  }

  /**
   * Writes and syncs the probe's bytes: whether the disk took them. The file is emptied again either way:
   * a probe that failed half-way would keep the room it took, which may be all the events had.
   */
  async #write(): Promise<boolean> {
    let fd: number | undefined;
    try {
      fd = await this.#io.open(this.#path, 'w');
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
}
