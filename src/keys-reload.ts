import type { ApiKeySpec } from './auth.ts';
import type { CliConfig } from './config.ts';
import type { KeysFile } from './config-keys.ts';
import type { Logger } from './log.ts';
import { READ_TIMEOUT_MS, readWithin } from './read-within.ts';
import { KEYS_FILE_MAX_BYTES, readRegularFileAsync } from './regular-file.ts';
import { readableWarning } from './secret-files.ts';
import { inSlices, type Steps } from './slices.ts';

// What SIGHUP does to the keys of --api-keys-file, in the single process, the primary of --workers (which
// checks the file before its workers load it) and each worker (which loads the bytes its primary sent).

/**
 * The keys file read again off the event loop, its keys (with those of --api-key and the environment)
 * checked as at start, a slice at a time (the process answers requests or its workers in between), and
 * given to `load` with the file's bytes (the handler's loadApiKeys; the primary keeps the bytes for its
 * workers). Keys that cannot be read or are refused are logged, by line and never a key, and the current
 * ones stay. `read` gives the bytes instead (a worker's, sent by its primary); else the file's mode is
 * checked as at start. Whether keys were loaded.
 *
 * One reload of a file at a time: a SIGHUP during one waits for it. A reload overtaken by a later one
 * stops at its next slice, loading and saying nothing; a burst of SIGHUPs reads and checks the file
 * about once, not once each (ten on a million keys held ~4.7 GB). Keys already being loaded go in. A
 * read that has not returned within `readTimeoutMs` fails its reload (read-within.ts).
 */
export function reloadKeysInSlices(
  file: CliConfig['keysFile'],
  log: Logger,
  load: (keys: ApiKeySpec[], bytes: Buffer) => Promise<void> | void,
  read?: (path: string) => Buffer | Promise<Buffer>,
  readTimeoutMs = READ_TIMEOUT_MS,
): Promise<boolean> {
  if (file === undefined) return Promise.resolve(false);
  const reload = (reloads.get(file) ?? 0) + 1;
  reloads.set(file, reload);
  const latest = () => reloads.get(file) === reload;
  const done = (running.get(file) ?? Promise.resolve(false)).then(() =>
    latest() ? reloadOnce(file, log, { latest, load, read, readTimeoutMs }) : false,
  );
  running.set(file, done);
  return done;
}

/** Reloads of each keys file begun so far, and the last of them (each waits for the one before). */
const reloads = new WeakMap<KeysFile, number>();
const running = new WeakMap<KeysFile, Promise<boolean>>();

interface Reload {
  readonly latest: () => boolean;
  readonly load: (keys: ApiKeySpec[], bytes: Buffer) => Promise<void> | void;
  readonly read: ((path: string) => Buffer | Promise<Buffer>) | undefined;
  readonly readTimeoutMs: number;
}

async function reloadOnce(file: KeysFile, log: Logger, reload: Reload): Promise<boolean> {
  const { latest, load, read } = reload;
  try {
    const reading = (): Promise<{ bytes: Buffer; mode: number | undefined }> =>
      read === undefined
        ? readRegularFileAsync(file.path, KEYS_FILE_MAX_BYTES)
        : Promise.resolve(read(file.path)).then((bytes) => ({ bytes, mode: undefined }));
    const { bytes, mode } = await readWithin(file.path, reading, reload.readTimeoutMs);
    if (!latest()) return false;
    // Read from the file itself: a mode that lets every user read it said as at start, of what was read.
    const warning =
      mode === undefined ? undefined : readableWarning(file.flag ?? '--api-keys-file', file.path, mode);
    if (warning !== undefined) log.warn({}, warning);
    const keys = await inSlices(
      whileLatest(
        file.keys(() => bytes),
        latest,
      ),
    );
    await load(keys, bytes);
    return true;
  } catch (err) {
    return latest() && reloadFailed(file, log, err);
  }
}

/** `steps`, stopped at a yield once `latest` says a later reload has begun. */
function* whileLatest<T>(steps: Steps<T>, latest: () => boolean): Steps<T> {
  for (;;) {
    if (!latest()) throw new Error('overtaken by a later reload');
    const step = steps.next();
    if (step.done) return step.value;
    yield;
  }
}

function reloadFailed(file: KeysFile, log: Logger, err: unknown): false {
  log.error(
    { file: file.path, reason: (err as Error).message },
    'API keys reload failed; keeping the current ones',
  );
  return false;
}
