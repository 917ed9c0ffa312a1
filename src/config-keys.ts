import { isUtf8 } from 'node:buffer';
import { type ApiKeySpec, sameSpec } from './auth.ts';
import { digest53 } from './digest.ts';
import { ownApiKeySpec } from './key-spec.ts';
import { OPTIONS } from './option-table.ts';
import { type FileRead, KEYS_FILE_MAX_BYTES, readFileUpTo, SMALL_FILE_MAX_BYTES } from './regular-file.ts';
import { ShardedMap } from './sharded-map.ts';
import { MAX_SIGNATURE_SECRETS } from './signature.ts';
import { atOnce, PIECE, type Steps } from './slices.ts';

// The API keys of the command line: flags, the keys file and the environment.

/** A bad invocation: reported in one line with a hint, exit code 1. */
export class UsageError extends Error {}

/** --api-keys-file, and how its keys are read again on SIGHUP (with the flags' and variables' own). */
export interface KeysFile {
  readonly path: string;
  readonly keys: (read: ReadFile) => Steps<ApiKeySpec[]>;
  /** How it was given: --api-keys-file, or its variable (the process's own messages say it so). */
  readonly flag?: string;
}

/** The keys file, if one was given: `flag` is how (--api-keys-file, or its variable). */
export function keysFile(
  path: string | undefined,
  keys: KeysFile['keys'],
  flag: string,
): KeysFile | undefined {
  return path === undefined ? undefined : { path, keys, flag };
}

/** Reads a file named on the command line (`readInput`, unless what was read before is wanted again). */
export type ReadFile = (file: string, flag: string) => Buffer;

/** `readInput`'s bytes alone. */
export const readBytes: ReadFile = (file, flag) => readInput(file, flag).bytes;

/**
 * Keys from --api-key, --api-keys-file and the environment, in that order, as steps (slices.ts): run at
 * once at start-up, in slices by a SIGHUP's reload.
 */
export function* apiKeySteps(
  flags: string[] | undefined,
  file: string | undefined,
  env: NodeJS.ProcessEnv,
  read: ReadFile = readBytes,
): Steps<ApiKeySpec[]> {
  const given: Array<[ApiKeySpec, string]> = (flags ?? []).map((spec) => [
    parseKeySpec(spec, '--api-key'),
    '--api-key',
  ]);
  if (file !== undefined) yield* keysFileEntries(read(file, '--api-keys-file'), given);
  const { env: variable, envAlias } = OPTIONS.apiKeys;
  for (const [name, value] of [
    [variable, env[variable]],
    [envAlias, env[envAlias]],
  ] as const) {
    // Not taken as unset: a deployment that lost its keys' value would answer every customer 401.
    if (value === '') throw new UsageError(`${name} is set but empty: give it a value, or unset it`);
    if (value === undefined) continue;
    const keys = value
      .split(',')
      .map((key) => key.trim())
      .filter((key) => key !== '');
    if (keys.length === 0) {
      throw new UsageError(`${name} holds no key (only spaces and commas): give it a value, or unset it`);
    }
    for (const key of keys) given.push([checked(key, name), name]);
  }
  // A key given twice over would be decided by one of its lines only: the other's types, secret or rate
  // silently lost. The same line twice (both variables set during a migration) says nothing new. Named
  // by where it was given: the key is a secret.
  const first = new ShardedMap<[ApiKeySpec, string]>(given.length, digest53);
  const specs: ApiKeySpec[] = [];
  for (let index = 0; index < given.length; index++) {
    if (index % PIECE === PIECE - 1) yield;
    const [spec, where] = given[index] as [ApiKeySpec, string];
    const shard = first.shardOf(spec.key);
    const before = shard.get(spec.key);
    if (before === undefined) {
      shard.set(spec.key, [spec, where]);
      specs.push(spec);
    } else if (!sameSpec(before[0], spec)) {
      throw new UsageError(
        `an API key is given twice, by ${before[1]} and ${where}, with other types, secret or rate: give it once`,
      );
    }
  }
  if (specs.length === 0) {
    throw new UsageError(
      'no API key: give --api-keys-file, SEGMENT_ENDPOINT_API_KEYS or --api-key (the endpoint never runs open)',
    );
  }
  return specs;
}

/** `KEY` or `KEY:type,type`. A key never holds ":": it is the username of Basic auth. */
export function parseKeySpec(spec: string, where: string): ApiKeySpec {
  const colon = spec.indexOf(':');
  if (colon === -1) return checked(spec, where);
  return checked({ key: spec.slice(0, colon), types: parseTypes(spec.slice(colon + 1)) }, where);
}

/**
 * One `KEY [type,type] [secret=SECRET ...] [rate=N]` per line; blank lines and `#` comments are skipped (a
 * `#` that starts a token starts a comment: within one, it is the token's, as in a secret).
 */
export function parseKeysFile(text: string): ApiKeySpec[] {
  const entries: Array<[ApiKeySpec, string]> = [];
  atOnce(keysFileEntries(Buffer.from(text), entries));
  return entries.map(([spec]) => spec);
}

/**
 * A keys file's longest line: a key longer could not be sent (its base64 in Node's 16 KiB of headers),
 * with room for its types, secret and rate.
 */
const MAX_LINE_BYTES = 8 * 1024;

/**
 * A keys file's most lines: ~220 bytes of heap a key, and a SIGHUP holds the current keys beside the new
 * ones (19 million short keys, under the size bound, ran a 4 GB heap out).
 */
const MAX_LINES = 4_000_000;

/** The number of the first line of `bytes` that is not UTF-8 (no character's bytes hold a newline). */
function* firstBadLine(bytes: Buffer): Steps<number> {
  for (let line = 1, at = 0; ; line++) {
    if (line % PIECE === 0) yield;
    const end = bytes.indexOf(NEWLINE, at);
    if (end === -1 || !isUtf8(bytes.subarray(at, end))) return line;
    at = end + 1;
  }
}

/** `bytes`' lines, counted up to MAX_LINES: a usage error past it. */
function* checkLineCount(bytes: Buffer): Steps<void> {
  for (let newlines = 0, at = bytes.indexOf(NEWLINE); at !== -1; at = bytes.indexOf(NEWLINE, at + 1)) {
    if (++newlines > MAX_LINES) throw new UsageError(`--api-keys-file: more than ${MAX_LINES} lines`);
    if (newlines % (PIECE * 8) === 0) yield;
  }
}

/** The keys file's keys, each with the line that gave it, added to `specs`. */
function* keysFileEntries(bytes: Buffer, specs: Array<[ApiKeySpec, string]>): Steps<void> {
  // Decoded line by line rather than as one text split at once: for a million lines those two steps
  // took ~0.2 and ~0.7 s, which a reload in slices could not cut. UTF-8 checked whole (~10 ms for 40 MB):
  // decoded leniently, a bad byte became U+FFFD, and a key holding it matched any sender's bad byte.
  // Each found a step at a time: a bad byte at the end of 12 million lines held the loop 1.7 s.
  if (!isUtf8(bytes))
    throw new UsageError(`--api-keys-file line ${yield* firstBadLine(bytes)}: not UTF-8 text`);
  yield* checkLineCount(bytes);
  for (let index = 0, at = 0; at <= bytes.length; index++) {
    if (index % PIECE === PIECE - 1) yield;
    const end = bytes.indexOf(NEWLINE, at);
    const stop = end === -1 ? bytes.length : end;
    // Checked in one step, a line of 200 MB held the loop 2.5 s. A "\r" before the "\n" ends the line.
    if (stop - at - (stop > at && bytes[stop - 1] === CR ? 1 : 0) > MAX_LINE_BYTES) {
      throw new UsageError(`--api-keys-file line ${index + 1}: longer than ${MAX_LINE_BYTES} bytes`);
    }
    const raw = bytes.toString('utf8', at, stop); // a "\r" before: trimmed
    at = end === -1 ? bytes.length + 1 : end + 1;
    // Most lines are a key alone: no comment to strip, nothing to split (a million keys are read at once).
    const line = (raw.includes('#') ? raw.replace(/(?:^|\s)#.*/, '') : raw).trim();
    if (line === '') continue;
    const [key, ...rest] = (/\s/.test(line) ? line.split(/\s+/) : [line]) as [string, ...string[]];
    const where = `--api-keys-file line ${index + 1}`;
    let types: string[] | undefined;
    const secrets: string[] = [];
    let rate: number | undefined;
    for (const token of rest) {
      // Several while one is rotated.
      if (token.startsWith('secret=') && token.length > 7) {
        if (secrets.length === MAX_SIGNATURE_SECRETS) {
          throw new UsageError(`${where}: more than ${MAX_SIGNATURE_SECRETS} secret=`);
        }
        secrets.push(token.slice(7));
      } else if (token.startsWith('rate=') && rate === undefined) {
        if (!WHOLE_RATE.test(token)) {
          throw new UsageError(
            `${where}: ${token}: the rate is a whole number of events a second (0 exempts the key)`,
          );
        }
        rate = Number(token.slice(5));
      } else if (types === undefined && !token.includes('=')) {
        types = parseTypes(token);
      } else {
        throw new UsageError(`${where}: expected "KEY [type,type] [secret=SECRET ...] [rate=N]"`);
      }
    }
    const extra = {
      ...(types && { types }),
      ...(secrets.length > 0 && { signatureSecret: secrets.length === 1 ? secrets[0] : secrets }),
      ...(rate !== undefined && { rate }),
    };
    specs.push([checked({ key, ...extra }, where), where]);
  }
}

const WHOLE_RATE = /^rate=\d+$/;
const NEWLINE = 0x0a;
const CR = 0x0d;
const parseTypes = (list: string) => list.split(',').map((type) => type.trim().toLowerCase());

/** The library's own check of a key, its error a usage error that names where the key was given. */
function checked(item: string | object, where: string): ApiKeySpec {
  try {
    return ownApiKeySpec(item, where);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A worker's reader: what its primary sent, else the file itself, read up to the larger bound. */
export const sentOrRead = (files: ReadonlyMap<string, Buffer>) => (path: string) =>
  files.get(path) ?? readFileUpTo(path, KEYS_FILE_MAX_BYTES).bytes;

/**
 * The reader of start-up: each file's bytes kept in `files` (a primary hands them to its workers), and
 * of each read here its mode in `modes`, as its descriptor showed it (what secret-files.ts judges: the
 * path may name another file since); a file the primary sent (`given`) is taken instead of read.
 */
export const keepingReads =
  (
    given: ReadonlyMap<string, Buffer> | undefined,
    files: Map<string, Buffer>,
    modes: Map<string, number>,
  ): ReadFile =>
  (path, flag) => {
    let bytes = given?.get(path);
    if (bytes === undefined) {
      const read = readInput(path, flag);
      modes.set(path, read.mode);
      bytes = read.bytes;
    }
    files.set(path, bytes);
    return bytes;
  };

/** A file named on the command line, and its mode, or a usage error that names its flag. */
export function readInput(file: string, flag: string): FileRead {
  try {
    return readFileUpTo(file, flag === '--api-keys-file' ? KEYS_FILE_MAX_BYTES : SMALL_FILE_MAX_BYTES);
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    throw new UsageError(`${flag}: cannot read ${file} (${code ?? message})`);
  }
}
