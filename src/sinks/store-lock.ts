import { readFileSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

// One writer to a store directory: a second process writing the same files (a manual start beside the
// service, two containers on one volume) would cut the other's lines when one of its writes failed, and
// start-up repair would set aside the other's line being written. Node has no advisory lock (flock), so
// the lock is a symbolic link, made in one step or not at all, whose target names its process: its pid
// and the time it started (a pid is used again; the pair is not), which is how a lock left by a process
// that is gone is told apart. A link holds its target in the inode: it can be made on a full disk, which
// is a state the store starts in and recovers from.

// A dot-file: a glob of the store's files (cat out/*) passes over it.
const LOCK = '.segment-endpoint.lock';

/** The lock on a store directory, held until `release()` or the process's exit. */
export interface StoreLock {
  release(): void;
}

/** Locks `dir` for this process (it must exist), or throws SEG_STORE_IN_USE naming the process that holds it. */
export function lockStore(dir: string): StoreLock {
  const path = join(dir, LOCK);
  const me = `${process.pid} ${startTime(process.pid) ?? 0}`;
  for (let attempt = 0; ; attempt++) {
    try {
      symlinkSync(me, path);
    } catch (err) {
      // A directory that takes no entry (not one, read-only, not permitted) is what is said, not the lock.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0)
        throw Object.assign(err as object, { path: dir });
      const holder = holderOf(path);
      if (holder !== undefined && alive(holder)) {
        const message = `the store ${dir} is in use by process ${holder.pid}: one process writes a store`;
        throw Object.assign(new Error(message), { code: 'SEG_STORE_IN_USE', holder: holder.pid });
      }
      unlinkSync(path); // left by a process that is gone
      continue;
    }
    const release = () => {
      process.off('exit', release);
      // Only this process's own: another may have taken it over after a mistake of an operator's.
      if (readlinkSync(path) === me) unlinkSync(path);
    };
    process.on('exit', release);
    return { release: () => guarded(release) };
  }
}

function guarded(release: () => void): void {
  try {
    release();
  } catch {
    // removed meanwhile: nothing to let go
  }
}

function holderOf(path: string): { pid: number; started: number } | undefined {
  try {
    const [pid, started] = readlinkSync(path).split(' ').map(Number);
    return Number.isInteger(pid) && (pid as number) > 0
      ? { pid: pid as number, started: started ?? 0 }
      : undefined;
  } catch {
    return undefined; // removed meanwhile, or not a link: taken for gone
  }
}

/** Whether the process that wrote a lock runs: its pid is in use, by a process started when it said. */
function alive({ pid, started }: { pid: number; started: number }): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const now = startTime(pid);
  return now === undefined || started === 0 || now === started;
}

/** When `pid` started, in clock ticks since boot (/proc/PID/stat, field 22): undefined where unknown. */
function startTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}
