import { availableParallelism } from 'node:os';
import { apiKeySteps, type KeysFile, keysFile, type ReadFile, readBytes, UsageError } from './config-keys.ts';
import { flagName, ofTheirSource } from './config-said.ts';
import { tlsOf } from './config-tls.ts';
import { unusedSettings } from './config-unused.ts';
import { parseFlagsOnce } from './flags.ts';
import type { LogLevel } from './log.ts';
import { OPTIONS, type OptionName, type OptionRow } from './option-table.ts';
import { readSecret, secretsIn } from './secret-reload.ts';
import type { ServerOptions } from './server.ts';
import { POSTGRES, REDIS, type Service, serviceAddress } from './service-url.ts';
import { atOnce } from './slices.ts';
import { FLAG_ROWS } from './usage.ts';

// The command line of the standalone process. Its flags, their environment variables, defaults and help
// lines are the rows of the option table (option-table.ts); this file reads them.

export { parseKeySpec, parseKeysFile, UsageError } from './config-keys.ts';
export { NAME, usage } from './usage.ts';

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

export interface CliConfig {
  /** createServer's options from the flags and environment; main adds handlers, log and ready. */
  readonly options: Partial<ServerOptions>;
  /** --handlers: the module to load the handlers from; without it, the default store under `out`. */
  readonly handlers: string | undefined;
  readonly out: string;
  readonly logLevel: LogLevel;
  /** Where the certificate and key were read from, to read again on SIGHUP. */
  readonly tlsFiles: { cert: string; key: string } | undefined;
  /** --api-keys-file, and the keys read again with it on SIGHUP (with the flags' and variables' own). */
  readonly keysFile: KeysFile | undefined;
  /** --signature-secret-file, read again on SIGHUP. */
  readonly signatureSecretFile: string | undefined;
  /** Processes serving the port: 1 is one process, no primary. */
  readonly workers: number;
  /** --postgres: the PostgreSQL sink's connection URL, instead of the file store. */
  readonly postgres: { readonly url: string; readonly table: string } | undefined;
  /** --idempotency-redis: where processed messageIds are remembered, instead of in each process. */
  readonly idempotencyRedis: string | undefined;
  /** The files given that hold secrets, by their flag: their mode is checked at start (secret-files.ts). */
  readonly secretFiles: ReadonlyArray<readonly [flag: string, path: string]>;
  /** Settings given that the rest leaves unused (config-unused.ts): warnings for the start. */
  readonly unused: readonly string[];
  /** A refusal's message with each flag not given, but set by its variable, said as the variable. */
  readonly said: (message: string) => string;
}

/** The files SIGHUP reads again: the certificate and key, the keys file, the signature secret file. */
export type ReloadedFiles = Pick<CliConfig, 'tlsFiles' | 'keysFile' | 'signatureSecretFile'>;

/** Reads flags, then the environment for what they left unset, and the files they name. Throws UsageError. */
export function parseConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  readFile: ReadFile = readBytes,
): CliConfig | 'help' | 'version' {
  const values = parseFlags(argv);
  if (values.help === true) return 'help';
  if (values.version === true) return 'version';
  try {
    return configOf(values, env, readFile);
  } catch (err) {
    throw err instanceof UsageError ? new UsageError(ofTheirSource(err.message, values, env)) : err;
  }
}

export type Flags = ReturnType<typeof parseFlags>;

function configOf(values: Flags, env: NodeJS.ProcessEnv, readFile: ReadFile): CliConfig {
  /** The flag's text, else its variable's; a switch is on or off. */
  const read = (name: OptionName): string | boolean | undefined => {
    const row: OptionRow = OPTIONS[name];
    const given = values[flagName(row)];
    const fromEnv = row.env === undefined ? undefined : env[row.env];
    if (row.cli === 'switch')
      return (given as boolean | undefined) ?? switchedOn(fromEnv || undefined, row.env);
    // Not unset: `--host=$HOST` with $HOST lost would listen everywhere, a secret lost turn checks off.
    if (given === '')
      throw new UsageError(`--${flagName(row)} is given but empty: give it a value, or leave it out`);
    if (given !== undefined) return given as string;
    if (fromEnv === '') throw new UsageError(`${row.env} is set but empty: give it a value, or unset it`);
    return fromEnv;
  };
  const text = (name: OptionName) => read(name) as string | undefined;

  const options: Record<string, unknown> = {};
  const unused: string[] = [];
  const tlsFiles = tlsOf(read, values, readFile, unused);
  if (tlsFiles !== undefined) options.tls = tlsFiles.pair;
  const keysPath = text('apiKeysFile');
  const flagKeys = values['api-key'] as string[] | undefined;
  const keysOf = (read: ReadFile) => apiKeySteps(flagKeys, keysPath, env, read);
  const apiKeys = atOnce(keysOf(readFile));
  options.apiKeys = apiKeys;
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
    options.signatureSecret = readSecret(readFile(secretFile, '--signature-secret-file'), secretFile);
  } else if (typeof options.signatureSecret === 'string') {
    const where = ofTheirSource('--signature-secret', values, env);
    options.signatureSecret = secretsIn(options.signatureSecret, where);
  }
  const logLevel = text('logLevel') ?? OPTIONS.logLevel.default;
  if (!(OPTIONS.logLevel.choices as readonly string[]).includes(logLevel)) {
    throw new UsageError(`--log-level must be ${OPTIONS.logLevel.help}, not "${logLevel}"`);
  }
  if (text('handlers') !== undefined && text('postgres') !== undefined) {
    throw new UsageError('give one of --handlers and --postgres: both say what is done with events');
  }
  if (text('idempotencyRedis') !== undefined && text('idempotency.maxEntries') !== undefined) {
    // Its 0 would say "no duplicate suppression" while Redis suppressed them.
    throw new UsageError(
      'give one of --idempotency-redis and --idempotency-max-entries: the second bounds the in-memory filter, which Redis replaces',
    );
  }
  return {
    options: options as Partial<ServerOptions>,
    handlers: text('handlers'),
    out: text('out') ?? OPTIONS.out.default,
    logLevel: logLevel as LogLevel,
    tlsFiles: tlsFiles?.files,
    keysFile: keysFile(keysPath, keysOf, ofTheirSource('--api-keys-file', values, env)),
    signatureSecretFile: secretFile,
    workers: workers(text('workers') ?? OPTIONS.workers.default),
    postgres: postgres(text('postgres'), text('postgresTable') ?? OPTIONS.postgresTable.default),
    idempotencyRedis: checkUrl(text('idempotencyRedis'), REDIS, '--idempotency-redis'),
    secretFiles: [
      ...(keysPath === undefined ? [] : [['--api-keys-file', keysPath] as const]),
      ...(secretFile === undefined ? [] : [['--signature-secret-file', secretFile] as const]),
    ],
    unused: [...unused, ...unusedSettings(read, apiKeys)],
    said: (message) => ofTheirSource(message, values, env),
  };
}

/** A service's URL, checked here so that a bad one is a usage error, not a process that keeps failing. */
function checkUrl(url: string | undefined, service: Service, flag: string): string | undefined {
  if (url === undefined) return undefined;
  try {
    serviceAddress(url, service);
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
  return url;
}

/** `auto` is one worker a CPU. More than 16 a CPU would only contend for the cores. */
function workers(value: string): number {
  const cpus = availableParallelism();
  const n = value === 'auto' ? cpus : /^\d+$/.test(value) ? Number(value) : 0;
  if (n < 1 || n > 16 * cpus) {
    throw new UsageError(`--workers must be auto or a whole number from 1 to ${16 * cpus}, not "${value}"`);
  }
  return n;
}

function postgres(url: string | undefined, table: string): CliConfig['postgres'] {
  if (url === undefined) return undefined;
  checkUrl(url, POSTGRES, '--postgres');
  // The table name goes into SQL as an identifier: plain names only, nothing to quote.
  if (!/^[a-z_][a-z0-9_]{0,41}$/.test(table)) {
    throw new UsageError(
      `--postgres-table must be a lower-case name (a-z, 0-9, _) of at most 42 characters, not "${table}"`,
    );
  }
  return { url, table };
}

function parseFlags(argv: readonly string[]) {
  try {
    return parseFlagsOnce<Record<string, string | boolean | string[] | undefined>>(argv, PARSE_OPTIONS, false)
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
    return within(row, flag, Number(value), 1, '', value);
  }
  if (row.cli === 'seconds') {
    if (!/^\d+(?:\.\d+)?$/.test(value)) {
      throw new UsageError(`${flag} must be a number of seconds, not "${value}"`);
    }
    return within(row, flag, Math.round(Number(value) * 1000), 1000, ' seconds', value);
  }
  return value;
}

/** A number held to its row's bounds, in the flag's own unit (`scale` to it); a refusal quotes the text. */
function within(
  row: OptionRow,
  flag: string,
  value: number,
  scale: number,
  unit: string,
  text: string,
): number {
  const { min = -Infinity, max = Infinity } = row;
  if (value < min || value > max) {
    // A bound past any sensible value (a TTL's) is only the size of a number: not said of a value below.
    const range =
      max >= Number.MAX_SAFE_INTEGER && value < min
        ? `at least ${min / scale}`
        : `from ${min / scale} to ${max / scale}`;
    throw new UsageError(`${flag} must be ${range}${unit}, not ${text}`);
  }
  return value;
}

/** A switch's variable: on, off, or a usage error for what says neither (`2`, `enabled`). */
function switchedOn(value: string | undefined, variable: string | undefined): boolean {
  if (value === undefined) return false;
  const word = value.toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(word)) return true;
  if (['0', 'false', 'no', 'off'].includes(word)) return false;
  throw new UsageError(`${variable} must be 1, true, yes or on, or 0, false, no or off, not "${value}"`);
}
