import { type ParseArgsConfig, parseArgs } from 'node:util';

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
    // parseArgs says this one in three lines: one is what every bad invocation gets.
    const ambiguous = /^Option '(--[^']+)' argument is ambiguous/.exec((err as Error).message)?.[1];
    if (ambiguous === undefined) throw err;
    throw new Error(`${ambiguous}: a value that starts with "-" is given as ${ambiguous}=VALUE`);
  }
}
