// A file read again on SIGHUP (the certificate, its key, the keys file) may sit on an NFS or FUSE mount
// that hangs: the read then never returns, and it holds one of the thread pool's four threads until the
// mount answers (the store's writes and syncs, and crypto, wait for those threads too).

/**
 * How long a SIGHUP waits for a file's bytes. Past this its reload fails, and the reloads after it are not
 * held behind a read that may never end.
 */
export const READ_TIMEOUT_MS = 30_000;

/** When each path's read that outlived its deadline began, until that read returns. */
const unreturned = new Map<string, number>();

/**
 * What `read` gives for `path`, or a rejection once `ms` have passed without it. While a read of `path`
 * that outlived its deadline has not returned, another is refused at once and not begun: a SIGHUP at
 * each try would otherwise take another thread of the pool each time, and four fill it.
 */
export function readWithin<T>(path: string, read: () => T | Promise<T>, ms = READ_TIMEOUT_MS): Promise<T> {
  const began = unreturned.get(path);
  if (began !== undefined) {
    const ago = Math.round((Date.now() - began) / 1000);
    return Promise.reject(new Error(`a read of ${path} begun ${ago} s ago has not returned (a hung mount?)`));
  }
  const start = Date.now();
  // A read that throws at once is a rejection like any other.
  const reading = new Promise<T>((resolve) => resolve(read()));
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      unreturned.set(path, start);
      const returned = () => {
        if (unreturned.get(path) === start) unreturned.delete(path);
      };
      reading.then(returned, returned);
      reject(new Error(`${path} was not read within ${ms / 1000} s (a hung mount?)`));
    }, ms);
  });
  return Promise.race([reading, late]).finally(() => clearTimeout(timer));
}
