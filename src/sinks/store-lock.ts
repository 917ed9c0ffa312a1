import { readFileSync, readlinkSync, renameSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { LOCK_NAME } from './file-names.ts';

// One writer to a store directory: a second process writing the same files (a manual start beside the
// service, two containers on one volume) would cut the other's lines when one of its writes failed, and
// start-up repair would set aside the other's line being written. Node has no advisory lock (flock), so
// the lock is a symbolic link, made in one step or not at all, whose target names its process: its pid,
// the time it started (a pid is used again; the pair is not), and the pid space it runs in (this boot
// of this machine, this container), which is how a lock left by a process that is gone is told apart.
// A link holds its target in the inode: it can be made on a full disk, a state the store starts in and
// recovers from.

/** The lock on a store directory, held until `release()` or the process's exit. */
export interface StoreLock {
  release(): void;
  /**
   * Makes sure the lock is in the directory at its path now, made again there if not (the directory was
   * moved away, removed or replaced: a new one is one another endpoint could start on); throws
   * SEG_STORE_IN_USE when another process holds that one. (A host's own lock may have none.)
   */
  renew?(): void;
  /** Why the store may not write now: another process took its lock (found within KEEP_MS). */
  lost?(): Error | undefined;
}

// The lock kept between the store's opens of its files: made again within this when removed by hand
// or with its directory, and another process's found, so that no two endpoints write one file.
const KEEP_MS = 1_000;

/**
 * Locks `dir` for this process (it must exist), or throws SEG_STORE_IN_USE naming the process that holds
 * it. A worker of --workers locks for its primary (`pid`), under whose lock it writes: that lock is taken
 * as held, and let go by the primary at its exit, not by the worker.
 */
export function lockStore(dir: string, pid = process.pid): StoreLock {
  const path = join(dir, LOCK_NAME);
  const me = `${pid} ${procStat(pid)?.started ?? 0} ${pidSpace()}`;
  const own = pid === process.pid;
  let lost: Error | undefined;
  const renew = () => {
    try {
      if (linkAt(path) !== me) take(dir, path, me, own);
      lost = undefined;
    } catch (err) {
      if ((err as { code?: unknown }).code === 'SEG_STORE_IN_USE') lost = err as Error;
      throw err;
    }
  };
  take(dir, path, me, own);
  const keep = setInterval(() => {
    try {
      renew();
    } catch {
      // Another process's: said by lost(). A directory gone: the store's next commit makes it again.
    }
  }, KEEP_MS).unref();
  const kept = () => clearInterval(keep);
  const lock = { renew, lost: () => lost };
  if (!own) return { ...lock, release: kept };
  const release = () => {
    kept();
    process.off('exit', guardedRelease);
    // Only this process's own: another may have taken it over after a mistake of an operator's.
    if (readlinkSync(path) === me) unlinkSync(path);
  };
  const guardedRelease = () => {
    try {
      release();
    } catch {
      // removed meanwhile (the directory moved away): nothing to let go
    }
  };
  process.on('exit', guardedRelease);
  return { ...lock, release: guardedRelease };
}

/** Makes the lock `me` at `path`, taking over one left by a process that is gone. */
function take(dir: string, path: string, me: string, own: boolean): void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      symlinkSync(me, path);
      return;
    } catch (err) {
      // A directory that takes no entry (not one, read-only, not permitted) is what is said, not the lock.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw Object.assign(err as object, { path: dir });
    }
    const holder = holderOf(path);
    if (!own && holder?.target === me) return; // the primary's, which its worker writes under
    if (holder !== undefined && !gone(holder)) throw inUse(dir, path, holder);
    if (holder !== undefined) takeOver(path, holder.target);
  }
  throw inUse(dir, path, holderOf(path));
}

/** The target of the link at `path`, or undefined when there is none. */
function linkAt(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}

interface Holder {
  readonly target: string;
  readonly pid: number;
  readonly started: number;
  /** The pid space it ran in; undefined for a lock that does not say (taken as this one). */
  readonly space: string | undefined;
}

function inUse(dir: string, path: string, holder: Holder | undefined): Error {
  const who = holder === undefined ? 'another process' : `process ${holder.pid}`;
  const elsewhere = holder?.space !== undefined && holder.space !== pidSpace();
  const message = elsewhere
    ? `the store ${dir} is locked by ${who} of another machine or container: if none writes there, remove ${path}`
    : `the store ${dir} is in use by ${who}: one process writes a store`;
  return Object.assign(new Error(message), { code: 'SEG_STORE_IN_USE', holder: holder?.pid });
}

/**
 * Moves a lock left by a process that is gone out of the way, unless another process took it over
 * meanwhile: the link is renamed first (one of two contenders can), and put back if it is not the one read.
 */
function takeOver(path: string, stale: string): void {
  const moved = `${path}.${process.pid}`;
  try {
    renameSync(path, moved);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // taken over and let go meanwhile
    throw err;
  }
  if (readlinkSync(moved) === stale) unlinkSync(moved);
  else renameSync(moved, path);
}

function holderOf(path: string): Holder | undefined {
  const target = linkAt(path);
  if (target === undefined) return undefined; // removed meanwhile, or not a link: taken for gone
  const [pid, started, space] = target.split(' ');
  const holder = { target, pid: Number(pid), started: Number(started ?? 0), space };
  return Number.isInteger(holder.pid) && holder.pid > 0 ? holder : undefined;
}

/**
 * Whether the process that made a lock is gone: its pid is not in use, or by a process started at
 * another time, or by one that died and was not reaped yet (a zombie holds nothing). One of another pid
 * space (another machine, another container) cannot be known gone.
 */
function gone({ pid, started, space }: Holder): boolean {
  if (space !== undefined && space !== pidSpace()) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return true;
  }
  const now = procStat(pid);
  if (now?.state === 'Z' || now?.state === 'X') return true;
  return now !== undefined && started !== 0 && now.started !== started;
}

/** This boot of this machine and this process's pid namespace: where a pid means one process. */
function pidSpace(): string {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
    return `${boot}/${readlinkSync('/proc/self/ns/pid').replace(/\D/g, '')}`;
  } catch {
    return 'unknown';
  }
}

/**
 * `pid`'s state (field 3: `Z` a zombie) and when it started, in clock ticks since boot (field 22), from
 * /proc/PID/stat: undefined where unknown.
 */
function procStat(pid: number): { readonly state: string | undefined; readonly started: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0], started: Number(fields[19]) };
  } catch {
    return undefined;
  }
}
