import { constants } from 'node:fs';
import type { FileStat, StoreIo } from './file-io.ts';

const { S_IFMT, S_IFREG } = constants;

// Where other users may write in --out, a file planted under a name the store writes (today's file, or
// where a torn line is set aside) would hand them what is written to it: customers' events and settings.

/**
 * `fd`'s stat, or a throw when it is no regular file (a FIFO with a reader, a device:
 * SEG_STORE_NOT_A_FILE) or another user owns it (SEG_STORE_FOREIGN_FILE): nothing goes in it.
 */
export async function ownStat(io: StoreIo, fd: number, name: string): Promise<FileStat> {
  const stat = await io.fstat(fd);
  if (!regular(stat.mode)) {
    const message = `${name} is not a regular file: events are stored only in files`;
    throw Object.assign(new Error(message), { code: 'SEG_STORE_NOT_A_FILE', path: name });
  }
  if (othersOwn(stat.uid)) {
    const message = `${name} is owned by another user (uid ${stat.uid}): events are stored only in files of this user's`;
    throw Object.assign(new Error(message), { code: 'SEG_STORE_FOREIGN_FILE', path: name });
  }
  return stat;
}

/** Whether a file of this `mode` is a regular file (a mode not known is taken as one: a host's own io). */
export const regular = (mode: number | undefined): boolean =>
  mode === undefined || (mode & S_IFMT) === S_IFREG;

/** Whether a file of owner `uid` is another user's than this process's (unknown: taken as its own). */
export function othersOwn(uid: number | undefined): boolean {
  const own = process.geteuid?.();
  return uid !== undefined && own !== undefined && uid !== own;
}
