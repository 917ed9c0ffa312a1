import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';

// Reading a certificate, a key or a keys file again on SIGHUP. Only a regular file: at start a named pipe
// is read as any file (`--cert <(vault read ...)`, its writer there), but read again later it has no
// writer, the read never ends, and it would hold the whole process, its requests and signals with it.
// Opened without blocking (a pipe's open waits for a writer), then looked at before a byte is read.

const FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;
const NOT_REGULAR = 'not a regular file: a pipe or a device could block the process for good';

/** The bytes of the regular file at `path`; an error saying so when it is anything else. */
export function readRegularFile(path: string): Buffer {
  const fd = openSync(path, FLAGS);
  try {
    if (!fstatSync(fd).isFile()) throw new Error(NOT_REGULAR);
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * As readRegularFile, read off the event loop: a keys file of a million keys is ~40 MB, which read in one
 * call held every request for ~140 ms on this machine, and for as long as a slow disk takes. Node reads
 * it 512 KiB at a time on its thread pool, the loop free between the reads.
 */
export async function readRegularFileAsync(path: string): Promise<Buffer> {
  const file = await open(path, FLAGS);
  try {
    if (!(await file.stat()).isFile()) throw new Error(NOT_REGULAR);
    return await file.readFile();
  } finally {
    await file.close();
  }
}
