import { UsageError } from './config-keys.ts';
import { parseFlagsOnce, strayArgument } from './flags.ts';
import { isPlainObject } from './json.ts';

// What the subcommands that send to an endpoint as Segment does (`test`, `load`) share: their command
// line's URL, API key and settings, and how a bad invocation or --help ends.

interface Output {
  write(text: string): unknown;
}

export interface SenderIo {
  readonly stdout: Output;
  readonly stderr: Output;
}

/** What every sender is given: where to send, as which customer, with which settings. */
export interface SenderTarget {
  readonly url: string;
  readonly apiKey: string;
  /** The --settings JSON object as given (checked to be one), sent as it is: no number or key rewritten. */
  readonly settings: string | undefined;
  readonly insecure: boolean;
  /** The subcommand's own flags, as parseArgs read them. */
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
}

function isHttpUrl(text: string): boolean {
  const protocol = URL.canParse(text) ? new URL(text).protocol : undefined;
  return protocol === 'http:' || protocol === 'https:';
}

/**
 * Reads `args`: the URL (one, http or https, without credentials: the key is `--api-key`), `--api-key`,
 * `--settings`, `--insecure`, `--help` and the subcommand's own string flags. 'help' for --help;
 * throws UsageError for a bad invocation.
 */
export function senderArgs(args: readonly string[], own: readonly string[]): SenderTarget | 'help' {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  const options = {
    'api-key': { type: 'string' },
    settings: { type: 'string' },
    insecure: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    ...Object.fromEntries(own.map((name) => [name, { type: 'string' as const }])),
  } as const;
  try {
    ({ values, positionals } = parseFlagsOnce<Record<string, string | boolean | undefined>>(
      args,
      options,
      true,
    ));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help === true) return 'help';
  if (positionals.length === 0) {
    throw new UsageError('the endpoint URL is required, e.g. https://localhost:8443/');
  }
  const urlAt = positionals.findIndex(isHttpUrl);
  // A word beside the URL, or one that is no URL at all: most often the rest of an unquoted key, so it
  // is named by its place, never shown. One written as a URL (`ftp://...`) is shown.
  const strayAt = positionals.findIndex(
    (text, i) => i !== urlAt && (positionals.length > 1 || !text.includes('://')),
  );
  if (strayAt !== -1) {
    const what =
      positionals.length > 1 ? 'one URL only' : 'the endpoint URL must start with http:// or https://';
    throw new UsageError(`${what}: ${strayArgument(args, options, strayAt, 1)}`);
  }
  // One positional left: the URL, or a word written as one.
  const url = positionals[0] as string;
  if (urlAt === -1) {
    // Written as one, but not one: a port past 65535, a host that cannot be (`http://a b/`).
    const written = /^https?:\/\//i.test(url);
    throw new UsageError(
      written
        ? `${quotedUrl(url)} is not a valid URL: its port (1 to 65535) or its host`
        : `${quotedUrl(url)} is not an http:// or https:// URL`,
    );
  }
  const parsed = new URL(url);
  // A client would turn them into an Authorization header in place of Segment's.
  if (parsed.username !== '' || parsed.password !== '') {
    throw new UsageError('the URL must not carry credentials: give the key with --api-key');
  }
  const apiKey = values['api-key'];
  if (typeof apiKey !== 'string' || apiKey === '') {
    throw new UsageError('--api-key is required: the key a customer of the endpoint would enter in Segment');
  }
  const settings = typeof values.settings === 'string' ? checkedSettings(values.settings) : undefined;
  return { url, apiKey, settings, insecure: values.insecure === true, values };
}

/** --settings as given, once it is known to be a JSON object; never echoed (settings may hold tokens). */
function checkedSettings(text: string): string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const at = /at position \d+/.exec((err as Error).message)?.[0];
    throw new UsageError(`--settings is not JSON${at === undefined ? '' : ` (${at})`}: ${SETTINGS_WANTED}`);
  }
  if (!isPlainObject(value)) {
    const what = Array.isArray(value) ? 'an array' : value === null ? 'null' : `a ${typeof value}`;
    throw new UsageError(`--settings is ${what}: ${SETTINGS_WANTED}`);
  }
  return text;
}

const SETTINGS_WANTED = `a JSON object is wanted, e.g. '{"region":"eu"}' (what was given is not shown: settings may hold secrets)`;

/**
 * A URL as printed: the values of its query and any credentials left out (a token in `?token=`, a
 * password in `user:pass@`). Text that is no URL is shown only with no `@` in it (a password may hold
 * any character: where it ends cannot be told), its query's values left out the same way.
 */
export function shownUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return text.includes('@')
      ? '(not shown: it may hold credentials)'
      : `${text.split(/[?#]/)[0]}${query(text)}`;
  }
  const user = url.username === '' && url.password === '' ? '' : '…@';
  return `${url.protocol}//${user}${url.host}${url.pathname}${query(url.search)}`;
}

/** `text` as a bad invocation names it: quoted, or said not to be shown. */
function quotedUrl(text: string): string {
  const shown = shownUrl(text);
  return shown.startsWith('(') ? `the URL ${shown}` : `"${shown}"`;
}

/** The query of a URL's text (from its `?` to its `#`), each value left out: `?token=…&region=…`. */
function query(text: string): string {
  const at = text.indexOf('?');
  if (at === -1) return '';
  const pairs =
    text
      .slice(at + 1)
      .split('#')[0]
      ?.split('&') ?? [];
  return `?${pairs.map((pair) => (pair.includes('=') ? `${pair.split('=')[0]}=…` : '…')).join('&')}`;
}

/** Runs a sender subcommand: its usage on --help, one line and a hint for a bad invocation (exit 1). */
export async function runSender<T>(
  name: string,
  io: SenderIo,
  parse: () => T | 'help',
  usage: () => string,
  run: (parsed: T, io: SenderIo) => Promise<number>,
): Promise<number> {
  let parsed: T | 'help';
  try {
    parsed = parse();
  } catch (err) {
    const hint = err instanceof UsageError ? `\nTry '${name} --help'.` : '';
    io.stderr.write(`${name}: ${(err as Error).message}${hint}\n`);
    return 1;
  }
  if (parsed === 'help') {
    io.stdout.write(usage());
    return 0;
  }
  const stdout = new GuardedOutput(io.stdout);
  try {
    const code = await run(parsed, { stdout, stderr: io.stderr });
    // The last write's error comes after it, a turn later: the run is whole once none came.
    await new Promise((resolve) => setImmediate(resolve));
    if (!stdout.closed && stdout.failure === undefined) return code;
  } catch (err) {
    if (err !== OUTPUT_GONE) throw err;
  }
  // Stopped at a write to a closed or failed stdout: the run is not whole, so it cannot pass. A closed
  // pipe (| head) is the reader's choice, said by nothing more; any other failure is said once.
  if (stdout.failure !== undefined)
    io.stderr.write(`${name}: cannot write to stdout: ${stdout.failure.message}\n`);
  return 1;
}

/** Thrown by a GuardedOutput's write once stdout is closed or failed: the run stops at it. */
const OUTPUT_GONE = new Error('stdout is closed');

/**
 * stdout as a sender writes it. A pipe closed by its reader (`| head`) or a write that fails (a full disk)
 * comes as an 'error' event after the write, which unheard would kill the process with a stack trace:
 * heard here, and the next write throws OUTPUT_GONE instead, so that the run stops there.
 */
class GuardedOutput implements Output {
  closed = false;
  failure: Error | undefined;
  readonly #out: Output;

  constructor(out: Output) {
    this.#out = out;
    // Kept for good: an error may still come for the last write after the run ends.
    (out as Partial<NodeJS.WritableStream>).on?.('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED') this.closed = true;
      else this.failure ??= err;
    });
  }

  write(text: string): void {
    if (this.closed || this.failure !== undefined) throw OUTPUT_GONE;
    this.#out.write(text);
  }
}
