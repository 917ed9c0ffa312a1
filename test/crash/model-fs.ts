import { ModelProcess } from './model-process.ts';

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
  process(skip: ReadonlySet<Skippable> = new Set(), blocking = false): ModelProcess {
    return new ModelProcess(this, skip, blocking);
  }

  newInode(): number {
    const ino = this.#nextIno++;
    this.data.set(ino, Buffer.alloc(0));
    return ino;
  }
}
