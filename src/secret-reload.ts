import { UsageError } from './config-keys.ts';
import type { Logger } from './log.ts';
import { READ_TIMEOUT_MS, readWithin } from './read-within.ts';
import { readRegularFileAsync, SMALL_FILE_MAX_BYTES } from './regular-file.ts';
import { readableWarning } from './secret-files.ts';
import { MAX_SIGNATURE_SECRETS, type SignatureSecrets } from './signature.ts';

// --signature-secret-file: its secrets, read at start (config.ts) and again on SIGHUP, in the single
// process, the primary of --workers (which checks the file before its workers load it) and each worker
// (which loads the bytes its primary sent).

const FLAG = '--signature-secret-file';

/** The secrets of --signature-secret-file (secretsIn), `file` named in a UsageError. */
export function readSecret(bytes: Buffer, file: string): SignatureSecrets {
  return secretsIn(bytes.toString(), `${FLAG}: ${file}`);
}

/**
 * The secrets of a secret file's text, or of --signature-secret's (or its variable's) value, read as the
 * file is: one a line, as written (a `#` is a character of the secret, not a comment); a line ends at
 * "\n", "\r\n" or "\r", none of them part of a secret (`$(cat file)` of a file with CRLF leaves a "\r", a
 * Kubernetes secret made `--from-file` a "\n"); blank lines passed over; several while a secret is
 * rotated. None, or too many, is a UsageError that names `where` and no secret.
 */
export function secretsIn(text: string, where: string): SignatureSecrets {
  // A byte-order mark says how a file is encoded (Windows editors write one), as in the keys file; one
  // may begin any line of a file put together from two (`cat old new`).
  const secrets = text
    .split(/\r\n|\r|\n/)
    .map((line) => (line.startsWith('\ufeff') ? line.slice(1) : line))
    .filter((line) => /\S/.test(line));
  if (secrets.length === 0) throw new UsageError(`${where} holds no secret`);
  if (secrets.length > MAX_SIGNATURE_SECRETS) {
    throw new UsageError(
      `${where} holds ${secrets.length} secrets, more than ${MAX_SIGNATURE_SECRETS} (one a line: a rotation's old and new)`,
    );
  }
  return secrets.length === 1 ? (secrets[0] as string) : secrets;
}

/** Reloads begun so far, by file: one that an older read finishes after loads nothing. */
const reloads = new Map<string, number>();

/**
 * The secret file read again off the event loop (within `readTimeoutMs`: a hung mount fails the reload)
 * and its secrets given to `load` with the file's bytes; `read` gives the bytes instead (a worker's, sent
 * by its primary), else the file's mode is checked as at start. A file that cannot be read or holds no
 * secret is logged, never a secret, and the current ones stay. Whether the secrets were loaded.
 */
export async function reloadSecretFile(
  file: string | undefined,
  log: Logger,
  load: (secrets: SignatureSecrets, bytes: Buffer) => void,
  read?: (path: string) => Buffer | Promise<Buffer>,
  readTimeoutMs = READ_TIMEOUT_MS,
): Promise<boolean> {
  if (file === undefined) return false;
  const reload = (reloads.get(file) ?? 0) + 1;
  reloads.set(file, reload);
  try {
    const reading = (): Promise<{ bytes: Buffer; mode: number | undefined }> =>
      read === undefined
        ? readRegularFileAsync(file, SMALL_FILE_MAX_BYTES)
        : Promise.resolve(read(file)).then((bytes) => ({ bytes, mode: undefined }));
    const { bytes, mode } = await readWithin(file, reading, readTimeoutMs);
    if (reloads.get(file) !== reload) return false; // a later SIGHUP's read decides
    const warning = mode === undefined ? undefined : readableWarning(FLAG, file, mode);
    if (warning !== undefined) log.warn({}, warning);
    load(readSecret(bytes, file), bytes);
    return true;
  } catch (err) {
    if (reloads.get(file) !== reload) return false;
    log.error(
      { file, reason: (err as Error).message },
      'signature secret reload failed; keeping the current one',
    );
    return false;
  }
}
