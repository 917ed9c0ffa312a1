import { basename, dirname } from 'node:path';
import type { StoreIo } from '../../src/sinks/file-io.ts';

// An in-memory file system of one directory for the crash-state explorer (explore.ts): it serves the
// store's (or the checkpoint's) file operations and writes down, in the order they were made, every one
// that changes the disk and every sync. What a power cut keeps of that trace is explore.ts's business.

/** A change to the disk, or a sync, or a point in the workload (`mark`: an answer given, say). */
export type Op =
  | { readonly kind: 'create'; readonly name: string; readonly ino: number }
  | { readonly kind: 'rename'; readonly from: string; readonly to: string }
  | { readonly kind: 'syncdir' }
  | { readonly kind: 'mkdir' }
  | { readonly kind: 'syncparent' }
  | { readonly kind: 'write'; readonly ino: number; readonly offset: number; readonly bytes: Buffer }
  | { readonly kind: 'truncate'; readonly ino: number; readonly length: number }
  | { readonly kind: 'sync'; readonly ino: number }
  | { readonly kind: 'mark'; readonly label: string };

/** A directory's files by name. */
export type Files = ReadonlyMap<string, Buffer>;

/**
 * What a process's next calls of one kind do, in turn: `short` writes half of what it was given,
 * `ENOSPC`/`EIO` fail without effect, `hang` never answers and kills the process (kill -9: what it had
 * written stays, nothing it asks for afterwards happens).
 */
export type Fault = 'ok' | 'short' | 'ENOSPC' | 'EIO' | 'hang';

/** Calls a process can be told to leave out, as if the code never made them (to show the explorer fails). */
export type Skippable = 'syncDirectory' | 'fdatasync';

export class ModelFs {
  readonly dir: string;
  readonly trace: Op[] = [];
  /** The files before the trace (durable), by inode. */
  readonly initialNames: ReadonlyMap<string, number>;
  readonly initialData: ReadonlyMap<number, Buffer>;
  readonly names = new Map<string, number>();
  readonly data = new Map<number, Buffer>();
  /** False until mkdir makes it, for a directory that did not exist before the trace. */
  exists: boolean;
  #nextIno = 1;

  /** `initial`: the directory's files, durable; `null`: no directory yet. */
  constructor(dir: string, initial: Files | null = new Map()) {
    this.dir = dir;
    this.exists = initial !== null;
    for (const [name, bytes] of initial ?? []) {
      const ino = this.#nextIno++;
      this.names.set(name, ino);
      this.data.set(ino, Buffer.from(bytes));
    }
    this.initialNames = new Map(this.names);
    this.initialData = new Map([...this.data].map(([ino, bytes]) => [ino, Buffer.from(bytes)]));
  }

  /** The files as the running system sees them (page cache included). */
  files(): Map<string, Buffer> {
    return new Map([...this.names].map(([name, ino]) => [name, this.data.get(ino) as Buffer]));
  }

  /** Writes down a point of the workload: `ack:3` once the third append is acknowledged, say. */
  mark(label: string): void {
    this.trace.push({ kind: 'mark', label });
  }

  /** A process using this file system: its own descriptors, faults and death. */
  process(skip: ReadonlySet<Skippable> = new Set()): ModelProcess {
    return new ModelProcess(this, skip);
  }

  newInode(): number {
    const ino = this.#nextIno++;
    this.data.set(ino, Buffer.alloc(0));
    return ino;
  }
}

interface Descriptor {
  readonly ino: number;
  readonly append: boolean;
  position: number;
}

const errno = (code: string, syscall: string, path = '') =>
  Object.assign(new Error(`${code}: simulated, ${syscall} ${path}`.trimEnd()), { code, syscall });

export class ModelProcess implements StoreIo {
  readonly #fs: ModelFs;
  readonly #skip: ReadonlySet<Skippable>;
  readonly #fds = new Map<number, Descriptor>();
  readonly #faults = new Map<string, Fault[]>();
  #nextFd = 3;
  #dead = false;

  constructor(fs: ModelFs, skip: ReadonlySet<Skippable>) {
    this.#fs = fs;
    this.#skip = skip;
  }

  /** Killed by a `hang` fault. */
  get dead(): boolean {
    return this.#dead;
  }

  /** The next calls of `call`, in turn, do what `faults` say (then they work again). */
  fault(call: 'write' | 'fdatasync' | 'ftruncate', ...faults: Fault[]): void {
    this.#faults.set(call, [...(this.#faults.get(call) ?? []), ...faults]);
  }

  open(path: string, flags: 'a' | 'r+' | 'r' | 'w'): Promise<number> {
    return this.#call(() => {
      const name = this.#name(path);
      let ino = this.#fs.names.get(name);
      if (ino === undefined) {
        if (flags === 'r' || flags === 'r+') throw errno('ENOENT', 'open', path);
        ino = this.#fs.newInode();
        this.#fs.names.set(name, ino);
        this.#fs.trace.push({ kind: 'create', name, ino });
      } else if (flags === 'w') {
        this.#truncate(ino, 0);
      }
      const fd = this.#nextFd++;
      this.#fds.set(fd, { ino, append: flags === 'a', position: 0 });
      return fd;
    });
  }

  write(fd: number, bytes: Uint8Array, offset: number, length: number): Promise<number> {
    return this.#call(() => {
      const file = this.#fd(fd);
      const fault = this.#next('write');
      if (fault === 'ENOSPC' || fault === 'EIO') throw errno(fault, 'write');
      const count = fault === 'short' ? Math.max(1, Math.floor(length / 2)) : length;
      const old = this.#fs.data.get(file.ino) as Buffer;
      const at = file.append ? old.length : file.position;
      const written = Buffer.from(bytes.subarray(offset, offset + count));
      const next = Buffer.alloc(Math.max(old.length, at + count));
      old.copy(next);
      written.copy(next, at);
      this.#fs.data.set(file.ino, next);
      this.#fs.trace.push({ kind: 'write', ino: file.ino, offset: at, bytes: written });
      file.position = at + count;
      return count;
    });
  }

  read(fd: number, into: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.#call(() => {
      const data = this.#fs.data.get(this.#fd(fd).ino) as Buffer;
      const part = data.subarray(position, position + length);
      into.set(part, offset);
      return part.length;
    });
  }

  fdatasync(fd: number): Promise<void> {
    return this.#call(() => {
      const { ino } = this.#fd(fd);
      const fault = this.#next('fdatasync');
      if (fault === 'ENOSPC' || fault === 'EIO') throw errno(fault, 'fdatasync');
      if (!this.#skip.has('fdatasync')) this.#fs.trace.push({ kind: 'sync', ino });
    });
  }

  syncDirectory(dir: string): Promise<void> {
    return this.#call(() => {
      const kind =
        dir === this.#fs.dir ? 'syncdir' : dir === dirname(this.#fs.dir) ? 'syncparent' : undefined;
      if (kind === undefined) throw errno('ENOENT', 'open', dir);
      if (!this.#skip.has('syncDirectory')) this.#fs.trace.push({ kind });
    });
  }

  ftruncate(fd: number, length: number): Promise<void> {
    return this.#call(() => {
      const { ino } = this.#fd(fd);
      const fault = this.#next('ftruncate');
      if (fault === 'ENOSPC' || fault === 'EIO') throw errno(fault, 'ftruncate');
      this.#truncate(ino, length);
    });
  }

  fstat(fd: number): Promise<{ readonly size: number }> {
    return this.#call(() => ({ size: (this.#fs.data.get(this.#fd(fd).ino) as Buffer).length }));
  }

  close(fd: number): Promise<void> {
    return this.#call(() => {
      this.#fd(fd);
      this.#fds.delete(fd);
    });
  }

  rename(from: string, to: string): Promise<void> {
    return this.#call(() => {
      const source = this.#name(from);
      const ino = this.#fs.names.get(source);
      if (ino === undefined) throw errno('ENOENT', 'rename', from);
      this.#fs.names.delete(source);
      this.#fs.names.set(this.#name(to), ino);
      this.#fs.trace.push({ kind: 'rename', from: source, to: this.#name(to) });
    });
  }

  readdir(dir: string): Promise<string[]> {
    return this.#call(() => {
      if (dir !== this.#fs.dir || !this.#fs.exists) throw errno('ENOENT', 'scandir', dir);
      return [...this.#fs.names.keys()];
    });
  }

  /** Creates the directory (its parent exists). */
  mkdir(dir: string): Promise<string | undefined> {
    return this.#call(() => {
      if (dir !== this.#fs.dir) throw errno('EACCES', 'mkdir', dir);
      if (this.#fs.exists) return undefined;
      this.#fs.exists = true;
      this.#fs.trace.push({ kind: 'mkdir' });
      return dir;
    });
  }

  #truncate(ino: number, length: number): void {
    const old = this.#fs.data.get(ino) as Buffer;
    const next = Buffer.alloc(length);
    old.copy(next, 0, 0, Math.min(length, old.length));
    this.#fs.data.set(ino, next);
    this.#fs.trace.push({ kind: 'truncate', ino, length });
  }

  #name(path: string): string {
    if (dirname(path) !== this.#fs.dir || !this.#fs.exists) throw errno('ENOENT', 'open', path);
    return basename(path);
  }

  #fd(fd: number): Descriptor {
    const file = this.#fds.get(fd);
    if (file === undefined) throw errno('EBADF', 'fd');
    return file;
  }

  #next(call: string): Fault {
    const fault = this.#faults.get(call)?.shift() ?? 'ok';
    if (fault === 'hang') {
      this.#dead = true;
      throw errno('EINTR', call); // never seen: a dead process's calls do not answer
    }
    return fault;
  }

  /**
   * Runs `work` a turn of the event loop later, as a thread-pool round trip does, so that other appends
   * can arrive meanwhile. A dead process's calls never run and never answer.
   */
  #call<T>(work: () => T): Promise<T> {
    return new Promise((resolve, reject) => {
      setImmediate(() => {
        if (this.#dead) return;
        try {
          const value = work();
          if (!this.#dead) resolve(value);
        } catch (err) {
          if (!this.#dead) reject(err);
        }
      });
    });
  }
}
