// What `segment-endpoint read` says: its usage, and of a line holding a zero byte.
import { EVENT_TYPES } from '../types.ts';
import type { StoreHole } from './store-reader.ts';

export const NAME = 'segment-endpoint read';

export function readUsage(): string {
  return `Usage: ${NAME} --out DIR [--follow] [--from CHECKPOINT_FILE] [--type TYPE]...
                             [--max-line-bytes N]

Prints the events stored under DIR (the endpoint's --out), one JSON line each, exactly as stored:
{"receivedAt":…,"source":…,"settings":…,"event":{…}}. Days in date order; within a day each worker's
file in turn (events-D.ndjson, then -w1, -w2, …), each file's lines in order. Only whole lines: a line
still being written is printed once complete; a power cut's hole (zero bytes), and what follows it, once
the endpoint's start has set it aside (said on stderr). Exits 0 once everything stored has been printed.

Options:
  --out DIR               the store directory: the endpoint's --out
  -f, --follow            then keep printing new lines as they are stored (a new day's file too) until
                          SIGINT, SIGTERM or SIGHUP, which save the checkpoint and exit 0 once the line
                          being written is whole (a second signal: at once, exit 1)
  --from CHECKPOINT_FILE  start after the last line a run with this checkpoint printed, and keep it
                          up to date (created if missing): across restarts of this reader every line
                          at least once, none skipped. A line counts as printed once stdout took it:
                          what a consumer behind a pipe had not yet handled when it stopped is not
                          printed again (see the README)
  --type TYPE             only events of this type (the event's "type"); repeat for several:
                          ${EVENT_TYPES.join(', ')}
  --max-line-bytes N      a longer line (no line the endpoint stores) is an error naming its file and
                          offset, not held in memory (default 67108864: 64 MiB)
  -h, --help              show this help

Exits 0 when done, stopped by SIGINT, SIGTERM or SIGHUP, or when stdout closes (| head); 1 for a bad
invocation, a failure or a second signal, with one line on stderr, and when a file was damaged (a zero
byte the endpoint's start does not set aside: the rest of that file is not printed, and said).
`;
}

/** The line on stderr for `hole`: what is not printed, and whether the endpoint's start will set it aside. */
export function holeSaid({ file, offset, bytes, setAsideAtStart }: StoreHole): string {
  const where = `${file}: a zero byte in the line at byte ${offset}`;
  if (setAsideAtStart) {
    return (
      `${where}, a power cut's hole in the last commit (never acknowledged): the ${bytes} bytes from ` +
      `there are not printed; the endpoint's next start sets them aside (to ${file}.torn), and the ` +
      'reading goes on from there'
    );
  }
  return (
    `${where}, which no line the endpoint writes holds: the ${bytes} bytes from there to the ` +
    "file's end are not printed, and the endpoint's start does not set them aside (not its writer's " +
    `last commit): the file is damaged (tail -c +${offset + 1} shows them)`
  );
}
