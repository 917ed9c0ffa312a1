import { basename, dirname } from 'node:path';
import type { OpenFlags, StoreIo } from '../../src/sinks/file-io.ts';
import type { Fault, ModelFs, Skippable } from './model-fs.ts';

// A process using a ModelFs: its own descriptors, the faults it is told to meet, and its death (kill -9).

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

  /**
   * @param blocking taken as an io whose write and sync block the event loop (`loopIo`): the store then
   *   commits at the end of the loop's turn.
   */
  constructor(
    fs: ModelFs,
    skip: ReadonlySet<Skippable>,
    readonly blocking = false,
  ) {
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

  open(path: string, flags: OpenFlags): Promise<number> {
    return this.#call(() => {
      const name = this.#name(path);
      let ino = this.#fs.names.get(name);
      if (ino === undefined) {
        if (flags === 'r' || flags === 'r+') throw errno('ENOENT', 'open', path);
        ino = this.#fs.newInode();
        this.#fs.names.set(name, ino);
        this.#fs.trace.push({ kind: 'create', name, ino });
      } else if (flags === 'wx') {
        throw errno('EEXIST', 'open', path);
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
      // The levels above the parent were there, durable, before the trace: a sync of one changes nothing.
      if (kind === undefined && this.#above(dir)) return;
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

  fstat(fd: number): Promise<{ readonly size: number; readonly dev: number; readonly ino: number }> {
    return this.#call(() => {
      const { ino } = this.#fd(fd);
      return { size: (this.#fs.data.get(ino) as Buffer).length, dev: 0, ino };
    });
  }

  /** Whether `path` is a directory above the store's: there before the trace, and durable. */
  #above(path: string): boolean {
    return this.#fs.dir.startsWith(path === '/' ? '/' : `${path}/`);
  }

  identity(path: string): Promise<{ readonly dev: number; readonly ino: number } | undefined> {
    return this.#call(() => {
      // The store's directory and those above it: one filesystem (the model has no other).
      const { dir } = this.#fs;
      if (path === dir) return this.#fs.exists ? { dev: 0, ino: 0 } : undefined;
      if (this.#above(path)) return { dev: 0, ino: 0 };
      const ino = this.#fs.names.get(this.#name(path));
      return ino === undefined ? undefined : { dev: 0, ino };
    });
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
