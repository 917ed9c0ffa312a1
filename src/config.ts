import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type ApiKeySpec, apiKeySpec } from './auth.ts';
import type { LogLevel } from './log.ts';
import { OPTIONS, type OptionName, type OptionRow, ROWS } from './option-table.ts';
import type { ServerOptions } from './server.ts';

// The command line of the standalone process. Its flags, their environment variables, defaults and help
// lines are the rows of the option table (option-table.ts); this file reads them.

export const NAME = 'segment-endpoint';

/** A bad invocation: reported in one line with a hint, exit code 1. */
export class UsageError extends Error {}

const FLAG_ROWS = ROWS.filter(([, row]) => row.flag !== undefined);

/** `--max-body-bytes N` → `max-body-bytes`: the name parseArgs knows it by. */
const flagName = (row: OptionRow): string => (row.flag ?? '').split(' ')[0]?.slice(2) ?? '';

/** What parseArgs is told: each flag of the table, a string unless a switch. */
const PARSE_OPTIONS = Object.fromEntries(
  FLAG_ROWS.map(([, row]) => [
    flagName(row),
    {
      type: row.cli === 'switch' ? ('boolean' as const) : ('string' as const),
      ...(row.cli === 'list' && { multiple: true }),
      ...(row.short !== undefined && { short: row.short }),
    },
  ]),
);

const WIDTH = 100; // columns of --help
const INDENT = 27; // where the help of each flag starts

export function usage(): string {
  return `Usage: ${NAME} [options]
       ${NAME} test URL --api-key KEY [--settings JSON] [--insecure]   send test events, see test --help

Receives Segment events over HTTPS and, unless --handlers is given, appends each accepted event
to a durable NDJSON file per day under --out.

Options (each also read from the environment variable shown; a flag wins over its variable):
${FLAG_ROWS.map(([, row]) => usageEntry(row)).join('\n')}

At least one API key is required. Flags are visible to every user of the host (ps): give secrets
in files of mode 0600 (--api-keys-file, --signature-secret-file) or in the environment instead.
SIGTERM or SIGINT drains: new events get 503, running ones finish, the store is flushed, then the
process exits 0. SIGHUP reads --cert and --key again (one received during start-up, once listening).
`;
}

/** A flag, its help, its variable and its default, wrapped under the help column. */
function usageEntry(row: OptionRow): string {
  const flag = row.short === undefined ? row.flag : `-${row.short}, ${row.flag}`;
  const words = [row.help];
  const variable = row.envAlias === undefined ? row.env : `${row.env} or ${row.envAlias}`;
  if (variable !== undefined) words.push(`(${variable}${row.cli === 'switch' ? '=1' : ''})`);
  const shown = row.cli === 'seconds' ? Number(row.default) / 1000 : row.default;
  if (shown !== undefined && shown !== false) words.push(`[${shown}]`);
  // The help starts at its column, or two spaces after a flag that reaches it.
  const lines = [`  ${flag}`.padEnd(INDENT - 2)];
  let space = '  ';
  for (const word of words.join(' ').split(' ')) {
    const line = lines[lines.length - 1] as string;
    if (line.length + space.length + word.length <= WIDTH) lines[lines.length - 1] = `${line}${space}${word}`;
    else lines.push(`${' '.repeat(INDENT)}${word}`);
    space = ' ';
  }
  return lines.join('\n');
}

export interface CliConfig {
  /** createServer's options from the flags and environment; main adds handlers, log and ready. */
  readonly options: Partial<ServerOptions>;
  /** --handlers: the module to load the handlers from; without it, the default store under `out`. */
  readonly handlers: string | undefined;
  readonly out: string;
  readonly logLevel: LogLevel;
  /** Where the certificate and key were read from, to read again on SIGHUP. */
  readonly tlsFiles: { cert: string; key: string } | undefined;
}

/** Reads flags, then the environment for what the flags left unset. Throws UsageError. */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): CliConfig | 'help' | 'version' {
  const values = parseFlags(argv);
  if (values.help === true) return 'help';
  if (values.version === true) return 'version';
  /** The flag's text, else its variable's; a switch is on or off. */
  const read = (name: OptionName): string | boolean | undefined => {
    const row: OptionRow = OPTIONS[name];
    const given = values[flagName(row)];
    const fromEnv = row.env === undefined ? undefined : env[row.env] || undefined;
    if (row.cli === 'switch') return (given as boolean | undefined) ?? isTrue(fromEnv);
    return (given as string | undefined) ?? fromEnv;
  };
  const text = (name: OptionName) => read(name) as string | undefined;

  const options: Record<string, unknown> = {};
  let tlsFiles: CliConfig['tlsFiles'];
  if (read('http') !== true) {
    const cert = text('cert');
    const key = text('key');
    if (cert === undefined || key === undefined) {
      throw new UsageError(
        '--cert and --key are required for HTTPS (or --http behind a TLS-terminating proxy)',
      );
    }
    tlsFiles = { cert, key };
    options.tls = { cert: readInput(cert, '--cert'), key: readInput(key, '--key') };
  }
  options.apiKeys = apiKeys(values['api-key'] as string[] | undefined, text('apiKeysFile'), env);
  for (const [name, row] of FLAG_ROWS) {
    if (row.scope === 'cli' || row.cli === 'list' || row.cli === 'module') continue; // read below
    const value = convert(row, read(name));
    if (value === undefined) continue;
    const [outer, inner] = name.split('.') as [string, string | undefined];
    // `idempotency.ttlMs` is the field ttlMs of the option idempotency.
    options[outer] = inner === undefined ? value : { ...(options[outer] as object), [inner]: value };
  }
  const secretFile = text('signatureSecretFile');
  if (secretFile !== undefined) {
    if (options.signatureSecret !== undefined) {
      throw new UsageError('give one of --signature-secret-file and --signature-secret, not both');
    }
    options.signatureSecret = readSecret(secretFile);
  }
  const logLevel = text('logLevel') ?? OPTIONS.logLevel.default;
  if (!(OPTIONS.logLevel.choices as readonly string[]).includes(logLevel)) {
    throw new UsageError(`--log-level must be ${OPTIONS.logLevel.help}, not "${logLevel}"`);
  }
  return {
    options: options as Partial<ServerOptions>,
    handlers: text('handlers'),
    out: text('out') ?? OPTIONS.out.default,
    logLevel: logLevel as LogLevel,
    tlsFiles,
  };
}

function parseFlags(argv: readonly string[]) {
  try {
    return parseArgs({ args: [...argv], options: PARSE_OPTIONS, strict: true, allowPositionals: false })
      .values;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A flag's text as the option's value: whole numbers and seconds (into milliseconds) checked here. */
function convert(row: OptionRow, value: string | boolean | undefined): string | number | boolean | undefined {
  if (typeof value !== 'string') return value;
  const flag = `--${flagName(row)}`;
  if (row.cli === 'integer') {
    if (!/^\d+$/.test(value)) throw new UsageError(`${flag} must be a whole number, not "${value}"`);
    return Number(value);
  }
  if (row.cli === 'seconds') {
    if (!/^\d+(?:\.\d+)?$/.test(value)) {
      throw new UsageError(`${flag} must be a number of seconds, not "${value}"`);
    }
    return Math.round(Number(value) * 1000);
  }
  return value;
}

/** Keys from --api-key, --api-keys-file and the environment, in that order. */
function apiKeys(
  flags: string[] | undefined,
  file: string | undefined,
  env: NodeJS.ProcessEnv,
): ApiKeySpec[] {
  const specs = (flags ?? []).map((spec) => parseKeySpec(spec, '--api-key'));
  if (file !== undefined) specs.push(...parseKeysFile(readInput(file, '--api-keys-file').toString()));
  const { env: variable, envAlias } = OPTIONS.apiKeys;
  for (const key of `${env[variable] ?? ''},${env[envAlias] ?? ''}`.split(',')) {
    if (key.trim() !== '') specs.push(checked(key.trim(), variable));
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

/** One `KEY [type,type] [secret=SECRET]` per line; blank lines and `#` comments are skipped. */
export function parseKeysFile(text: string): ApiKeySpec[] {
  const specs: ApiKeySpec[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') return;
    const [key, ...rest] = line.split(/\s+/) as [string, ...string[]];
    const where = `--api-keys-file line ${index + 1}`;
    let types: string[] | undefined;
    let signatureSecret: string | undefined;
    for (const token of rest) {
      if (token.startsWith('secret=') && signatureSecret === undefined && token.length > 7) {
        signatureSecret = token.slice(7);
      } else if (types === undefined && !token.includes('=')) {
        types = parseTypes(token);
      } else {
        throw new UsageError(`${where}: expected "KEY [type,type] [secret=SECRET]"`);
      }
    }
    specs.push(checked({ key, ...(types && { types }), ...(signatureSecret && { signatureSecret }) }, where));
  });
  return specs;
}

const parseTypes = (list: string) => list.split(',').map((type) => type.trim().toLowerCase());

/** The library's own check of a key, its error a usage error that names where the key was given. */
function checked(item: unknown, where: string): ApiKeySpec {
  try {
    return apiKeySpec(item, where);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The secret in a file, less one trailing newline (what editors add). */
function readSecret(file: string): string {
  const text = readInput(file, '--signature-secret-file')
    .toString()
    .replace(/\r?\n$/, '');
  if (text === '') throw new UsageError(`--signature-secret-file: ${file} holds an empty secret`);
  return text;
}

function isTrue(value: string | undefined): boolean {
  return value !== undefined && ['1', 'true', 'yes', 'on'].includes(value.toLowerCase());
}

function readInput(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new UsageError(`${flag}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
