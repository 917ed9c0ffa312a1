import { type ParseArgsConfig, parseArgs } from 'node:util';
import { nearest } from './spelling.ts';

// The command line as node:util's parseArgs reads it, with one check it lacks: a flag that takes one
// value, given twice, is refused rather than the last one taken (`--port 1 --port 2`, a secret given
// twice in a unit file and an override). Flags that may repeat say so (`multiple`).

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs, strict; throws (its own error, or one naming the repeated flag) for a bad command line. */
export function parseFlagsOnce<Values>(
  args: readonly string[],
  options: Options,
  positionals: boolean,
): { values: Values; positionals: string[] } {
  const parsed = parse(args, options, positionals);
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option' || options[token.name]?.multiple === true) continue;
    if (seen.has(token.name)) throw new Error(`--${token.name} given twice: give it once`);
    seen.add(token.name);
  }
  // The caller names the shape its options give (parseArgs's own type of it cannot be named here).
  return { values: parsed.values as Values, positionals: parsed.positionals };
}

function parse(args: readonly string[], options: Options, positionals: boolean) {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: positionals, tokens: true });
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      throw new Error(`${strayArgument(args, options, 0)}: this command takes none`);
    }
    if ((err as { code?: unknown }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const unknown = /^Unknown option '(-[^']*)'/.exec((err as Error).message)?.[1];
      if (unknown !== undefined) throw new Error(unknownFlag(unknown, options));
    }
    // parseArgs says this one in three lines: one is what every bad invocation gets.
    const ambiguous = /^Option '(--[^']+)' argument is ambiguous/.exec((err as Error).message)?.[1];
    if (ambiguous === undefined) throw err;
    throw new Error(`${ambiguous}: a value that starts with "-" is given as ${ambiguous}=VALUE`);
  }
}

/**
 * A flag none of `options` is, and the one it most likely misspells. Not parseArgs's own message, which
 * where positionals are allowed goes on to advise `--` before an argument that starts with "-".
 */
function unknownFlag(flag: string, options: Options): string {
  const near = flag.startsWith('--') ? nearest(flag.slice(2), Object.keys(options)) : undefined;
  return `Unknown option '${flag}'${near === undefined ? '' : `: did you mean --${near}?`}`;
}

/**
 * Where the `nth` argument that is neither a flag nor a flag's value is, without showing it: it is most
 * often the rest of a value holding a space, and that value may be a secret (`--api-key KEY1 KEY2`), which
 * a start's error would leave in the journal. `before`: the arguments before `args` (a subcommand's name).
 */
export function strayArgument(args: readonly string[], options: Options, nth: number, before = 0): string {
  const { tokens } = parseArgs({
    args: [...args],
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const stray = tokens.filter((token) => token.kind === 'positional')[nth];
  if (stray === undefined) return 'an argument that is not a flag was given';
  const previous = tokens.filter((token) => token.index < stray.index).at(-1);
  const after =
    previous?.kind === 'option' && previous.value !== undefined && previous.inlineValue === false
      ? `, after ${previous.rawName} and its value (a value holding spaces must be quoted)`
      : '';
  return `argument ${before + stray.index + 1} (not shown: it may be part of a secret) is not a flag${after}`;
}
