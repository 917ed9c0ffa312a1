import { OPTIONS, type OptionRow } from './option-table.ts';
import { FLAG_ROWS } from './usage.ts';

// How a refusal of the configuration names what was wrong: by the flag the operator gave, or by the
// environment variable the value came from, never by the library's own option names (`options.path`).

/** `--max-body-bytes N` → `max-body-bytes`: the name parseArgs knows it by. */
export const flagName = (row: OptionRow): string => (row.flag ?? '').split(' ')[0]?.slice(2) ?? '';

/**
 * A library check's message about `options.NAME`, said of the flags that set each option it names
 * ("--metrics-path must differ from --path"), and of what the others are to an operator ("the health
 * check path"); undefined if no option it names is set by a flag.
 */
export function ofTheFlag(message: string): string | undefined {
  const rowOf = (name: string) => (OPTIONS as Readonly<Record<string, OptionRow>>)[name];
  const named = [...message.matchAll(/options\.([\w.]+)/g)].map((match) => match[1] as string);
  if (!named.some((name) => rowOf(name)?.flag !== undefined)) return undefined;
  return message.replace(/options\.([\w.]+)/g, (said, name: string) => {
    const row = rowOf(name);
    return row?.flag !== undefined ? `--${flagName(row)}` : (UNFLAGGED.get(name) ?? said);
  });
}

// What the options no flag sets are, to someone who runs the process.
const UNFLAGGED: ReadonlyMap<string, string> = new Map([
  ['healthPath', 'the health check path'],
  ['livePath', 'the liveness check path'],
]);

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
