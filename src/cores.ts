import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

// The cores this process may run on, which decides where the default store makes its group commit
// (src/sinks/file-io.ts `defaultIo`): on the event loop with one, on the thread pool with more.

/**
 * The cores this process may run on (its CPU affinity): a CPU quota (a container's `--cpus`) still lets
 * the thread pool run beside the main thread, and newer libuv counts it in `availableParallelism`.
 */
export function coresAllowed(status = '/proc/self/status'): number {
  let list: string | undefined;
  try {
    list = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync(status, 'latin1'))?.[1];
  } catch {
    // not Linux
  }
  if (list === undefined) return availableParallelism();
  let cores = 0;
  for (const range of list.split(',')) {
    const [first, last = first] = range.split('-').map(Number) as [number, number?];
    cores += last - first + 1;
  }
  return cores;
}
