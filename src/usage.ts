import { type OptionRow, ROWS } from './option-table.ts';

// The standalone process's --help: its flags, their variables and defaults, from the option table.

export const NAME = 'segment-endpoint';

/** The rows with a flag, in table order: the flags --help lists and the command line reads. */
export const FLAG_ROWS = ROWS.filter(([, row]) => row.flag !== undefined);

const WIDTH = 100; // columns of --help
const INDENT = 27; // where the help of each flag starts

export function usage(): string {
  return `Usage: ${NAME} [options]
       ${NAME} test URL --api-key KEY [--settings JSON] [--insecure]   send test events, see test --help
       ${NAME} load URL --api-key KEY [--rate N] [--duration S] ...    Segment-shaped load, see load --help
       ${NAME} read --out DIR [--follow] [--from FILE] [--type TYPE]   print stored events, see read --help

Receives Segment events over HTTPS and, unless --handlers is given, stores each accepted event
durably: in an NDJSON file per day under --out, or in PostgreSQL with --postgres.

Options (each also read from the environment variable shown; a flag wins over its variable, but keys
from --api-key and SEGMENT_ENDPOINT_API_KEYS are all accepted):
${FLAG_ROWS.map(([, row]) => usageEntry(row)).join('\n')}

At least one API key is required. Flags are visible to every user of the host (ps): give secrets
in files of mode 0600 (--api-keys-file, --signature-secret-file) or in the environment instead.
SIGTERM or SIGINT drains: new events get 503, running ones finish, the store is flushed, then the
process exits 0. SIGHUP reads --cert, --key, --api-keys-file and --signature-secret-file again (one
received during start-up, once listening) if they are regular files (a named pipe, read again with no
writer, would block for good), off the event loop, within 30 s: a read of a hung NFS or FUSE mount
fails that reload, and no other read of that file begins until it returns. What does not load is
logged, and what was loaded before stays. Files are read up to 1 MiB (--cert, --key,
--signature-secret-file) and 128 MiB (--api-keys-file).
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
