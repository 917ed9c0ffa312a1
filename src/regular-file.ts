import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';

// Reading a certificate or key again on SIGHUP. Only a regular file: at start a named pipe is read as
// any file (`--cert <(vault read ...)`, its writer there), but read again later it has no writer, the
// read never ends, and it would hold the whole process, its requests and signals with it. Opened
// without blocking (a pipe's open waits for a writer), then looked at before a byte is read.

/** The bytes of the regular file at `path`; an error saying so when it is anything else. */
export function readRegularFile(path: string): Buffer {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) {
      throw new Error('not a regular file: a pipe or a device could block the process for good');
    }
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}
