import { OPTIONS, type OptionRow } from './option-table.ts';
import { FLAG_ROWS } from './usage.ts';

// How a refusal of the configuration names what was wrong: by the flag the operator gave, or by the
// environment variable the value came from, never by the library's own option names (`options.path`).

/** `--max-body-bytes N` → `max-body-bytes`: the name parseArgs knows it by. */
export const flagName = (row: OptionRow): string => (row.flag ?? '').split(' ')[0]?.slice(2) ?? '';

/**
 * A library check's message about `options.NAME`, said of the flags that set each option it names
 * ("--metrics-path must differ from --path"); undefined if it does not start with one a flag sets.
 */
export function ofTheFlag(message: string): string | undefined {
  const flagOf = (name: string) => (OPTIONS as Readonly<Record<string, OptionRow>>)[name];
  const first = /^options\.([\w.]+)/.exec(message)?.[1];
  if (first === undefined || flagOf(first)?.flag === undefined) return undefined;
  return message.replace(/options\.([\w.]+)/g, (said, name: string) => {
    const row = flagOf(name);
    return row?.flag === undefined ? said : `--${flagName(row)}`;
  });
}

/**
 * `message` with every flag it names that was not given, but whose variable was set, said as that
 * variable: what the operator set ("SEGMENT_ENDPOINT_PATH must be a path starting with /").
 */
export function ofTheirSource(
  message: string,
  given: Readonly<Record<string, unknown>>,
  env: NodeJS.ProcessEnv,
): string {
  return message.replace(/--([a-z][a-z-]*)/g, (said, flag: string) => {
    const row = FLAG_ROWS.find(([, r]) => flagName(r) === flag)?.[1];
    if (row?.env === undefined || given[flag] !== undefined) return said;
    if (env[row.env] !== undefined) return row.env;
    const alias = row.envAlias;
    return alias !== undefined && env[alias] !== undefined ? alias : said;
  });
}
