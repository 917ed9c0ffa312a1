// The `read` subcommand's command line: its usage, its flags, and printing the store to stdout.
import { constants } from 'node:buffer';
import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { UsageError } from '../config.ts';
import { parseFlagsOnce, strayArgument } from '../flags.ts';
import { ownedByTheStore } from '../sinks/file-names.ts';
import { EVENT_TYPES } from '../types.ts';
import { READ_SIGNALS } from './main.ts';
import { FileOutput } from './output.ts';
import { holeSaid, NAME, readUsage } from './said.ts';
import { type ReadStoreOptions, readStore, type StoreHole } from './store-reader.ts';

interface Output {
  write(text: string): unknown;
}

interface Parsed {
  readonly dir: string;
  readonly options: ReadStoreOptions;
}

/**
 * The `read` subcommand. Resolves with the exit code: 0 when done (or stopped by SIGINT, SIGTERM or
 * SIGHUP, or by stdout closing, as `| head` does), 1 for a bad invocation or a failure (one line on stderr).
 * `early`: such a signal came while the command loaded (read/main.ts): it stops before printing.
 */
export async function readMain(
  args: readonly string[],
  io: { readonly stdout: Writable; readonly stderr: Output } = process,
  early = false,
): Promise<number> {
  // The first signal stops once the line being written is whole (a consumer that lags holds it); a
  // second one stops at once, that line cut short. Heard from the start: one while the flags are checked
  // and the store looked at stops the reader before it prints (unheard, it would kill it: exit 143).
  const stop = new AbortController();
  if (early) stop.abort();
  let forced: () => void = () => {};
  const cutShort = new Promise<number>((resolve) => {
    forced = () => {
      io.stderr.write(`${NAME}: second signal: stopped with a line half written\n`);
      resolve(1);
    };
  });
  const onSignal = () => (stop.signal.aborted ? forced() : stop.abort());
  // SIGHUP too: the terminal or ssh session it ran in went away (its default would cut the line short).
  for (const signal of READ_SIGNALS) process.on(signal, onSignal);
  try {
    return await Promise.race([checkedThenPrinted(args, io, stop.signal), cutShort]);
  } finally {
    for (const signal of READ_SIGNALS) process.off(signal, onSignal);
  }
}

async function checkedThenPrinted(
  args: readonly string[],
  io: { readonly stdout: Writable; readonly stderr: Output },
  signal: AbortSignal,
): Promise<number> {
  let parsed: Parsed | 'help';
  try {
    parsed = parseReadArgs(args);
    if (parsed !== 'help') await checkStore(parsed);
  } catch (err) {
    const hint = err instanceof UsageError ? `\nTry '${NAME} --help'.` : '';
    io.stderr.write(`${NAME}: ${(err as Error).message}${hint}\n`);
    return 1;
  }
  if (parsed === 'help') {
    io.stdout.write(readUsage());
    return 0;
  }
  if (signal.aborted) return 0; // stopped before a line was printed: the checkpoint stands as it was
  let damaged = false;
  const onHole = (hole: StoreHole) => {
    io.stderr.write(`${NAME}: ${holeSaid(hole)}\n`);
    damaged ||= !hole.setAsideAtStart;
  };
  try {
    await print({ ...parsed, options: { ...parsed.options, onHole } }, io.stdout, signal);
    return damaged ? 1 : 0; // some stored bytes will never be printed
  } catch (err) {
    io.stderr.write(`${NAME}: ${(err as Error).message}\n`);
    return 1;
  }
}

/**
 * Prints every line, one write at a time: the next line is asked for (and the one before counted as
 * done by the checkpoint) only once stdout has taken this one, so a slow consumer holds the reader back
 * instead of filling memory, and a line still in this process's buffer when it stops is printed again.
 * One taken by stdout is done: a pipe's buffer, or a consumer reading ahead, may hold lines that the
 * consumer never handles if it stops.
 * Resolves when done, stopped, or stdout is closed; rejects on any other failure.
 */
async function print({ dir, options }: Parsed, stdout: Writable, signal: AbortSignal): Promise<void> {
  let failure: Error | undefined;
  let closed = false;
  const onError = (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') closed = true;
    else failure ??= err;
  };
  // Kept for good: a failed write's error is also emitted after its callback, and unheard it would throw.
  stdout.on('error', onError);
  // Not given up on when a signal comes: part of the line may be in a pipe already, and the rest must
  // follow it (readMain).
  const file = FileOutput.of(stdout);
  const written = (bytes: Buffer) =>
    new Promise<void>((resolve) => {
      if (file !== undefined) {
        file.write(bytes, onError);
        return resolve();
      }
      stdout.write(bytes, (err) => {
        if (err) onError(err);
        resolve();
      });
    });
  // A signal does not break the loop: asking for the next line is what counts this one as done, and
  // readStore then ends on the signal, saving a checkpoint past the line printed last. Leaving the loop
  // would count it as not printed, and the next run from the checkpoint would print it again.
  for await (const line of readStore(dir, { ...options, signal })) {
    await written(line.bytes); // as stored, not decoded and encoded again
    if (closed || failure !== undefined) break;
  }
  if (failure !== undefined) throw failure;
}

/** --out is a directory, and --from not one of its files. */
async function checkStore({ dir, options }: Parsed): Promise<void> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(dir)).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`--out ${dir}: ${code === 'ENOENT' ? 'no such directory' : (err as Error).message}`);
  }
  if (!isDirectory) throw new UsageError(`--out ${dir} is not a directory`);
  const from = options.checkpoint;
  if (from !== undefined && (await isStoreFile(dir, from))) {
    throw new UsageError(`--from ${from} is a file of the store: keep the checkpoint elsewhere`);
  }
}

const READ_FLAGS = {
  out: { type: 'string' },
  follow: { type: 'boolean', short: 'f' },
  from: { type: 'string' },
  type: { type: 'string', multiple: true },
  'max-line-bytes': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parseReadArgs(args: readonly string[]): Parsed | 'help' {
  let values: {
    out?: string;
    follow?: boolean;
    from?: string;
    type?: string[];
    'max-line-bytes'?: string;
    help?: boolean;
  };
  let positionals: string[];
  try {
    ({ values, positionals } = parseFlagsOnce<typeof values>(args, READ_FLAGS, true));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  if (positionals.length > 0)
    throw new UsageError(`${strayArgument(args, READ_FLAGS, 0, 1)}: read takes none`);
  const dir = values.out;
  if (dir === undefined || dir === '') {
    throw new UsageError("--out is required: the endpoint's store directory (its --out)");
  }
  if (values.from === '') throw new UsageError('--from needs a file name: where the checkpoint is kept');
  const known = new Set<string>(EVENT_TYPES);
  const types = values.type?.map((type) => type.toLowerCase());
  const unknown = types?.find((type) => !known.has(type));
  if (unknown !== undefined) {
    throw new UsageError(`--type must be one of ${EVENT_TYPES.join(', ')}, not "${unknown}"`);
  }
  const maxLineBytes = values['max-line-bytes'];
  if (
    maxLineBytes !== undefined &&
    !(/^\d+$/.test(maxLineBytes) && +maxLineBytes >= 1 && +maxLineBytes <= MAX_LINE_BYTES)
  ) {
    throw new UsageError(
      `--max-line-bytes must be a number of bytes from 1 to ${MAX_LINE_BYTES}, not "${maxLineBytes}"`,
    );
  }
  const options: ReadStoreOptions = {
    follow: values.follow ?? false,
    ...(values.from !== undefined && { checkpoint: values.from }),
    ...(types !== undefined && { types }),
    ...(maxLineBytes !== undefined && { maxLineBytes: Number(maxLineBytes) }),
  };
  return { dir, options };
}

// The longest line that can be printed: V8's longest string, less its newline.
const MAX_LINE_BYTES = constants.MAX_STRING_LENGTH - 1;

/**
 * Whether `file` is, or would be made as, one of the store's own files in `dir` (a checkpoint there would
 * overwrite it, or be printed as events), however links lead there: to the store, or to the file.
 */
async function isStoreFile(dir: string, file: string): Promise<boolean> {
  const real = async (path: string) => realpath(path).catch(() => undefined);
  const where =
    (await real(file)) ?? join((await real(dirname(file))) ?? resolve(dirname(file)), basename(file));
  return dirname(where) === (await real(dir)) && ownedByTheStore(basename(where));
}
