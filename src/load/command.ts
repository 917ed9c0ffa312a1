// The `load` subcommand's command line: its usage, its flags, and the exit code of a run.
import { UsageError } from '../config-keys.ts';
import { probe } from '../probe.ts';
import { runSender, type SenderIo, senderArgs, shownUrl } from '../sender-args.ts';
import { EVENT_TYPES, type EventType } from '../types.ts';
import { MIX, RETRY_EVERY } from './mix.ts';
import { type LoadFigures, report, SEGMENT_TIMEOUT_MS, verdict } from './report.ts';
import { type LoadOptions, sendLoad } from './run.ts';

const NAME = 'segment-endpoint load';

const DEFAULTS = {
  connections: 10,
  duration: 10, // s
};

const POSITIVE_INTEGER = /^[1-9]\d*$/;
const MAX_DURATION = 86_400; // s
const MAX_CONNECTIONS = 10_000;

export function loadUsage(): string {
  const mix = Object.entries(MIX)
    .map(([type, share]) => `${type} ${share} %`)
    .join(', ');
  return `Usage: ${NAME} URL --api-key KEY [--rate N] [--connections C] [--duration S] [--insecure]
       [--settings JSON] [--types TYPE,TYPE]

Sends Segment-shaped traffic to URL (this endpoint or any other) the way Segment sends it: one event
per POST with Segment's headers, over kept-alive connections, each event a new messageId, and 1
request in ${RETRY_EVERY} a retry of an event already sent (same messageId and body). Every type comes, in a
track-heavy mix:
  ${mix}
Prints requests/s, latency percentiles, answers by status, errors and timeouts, and a verdict against
Segment's 5 s timeout.

Exits 0 only if every answer was 2xx, none took over 5 s and no request failed; 1 otherwise, and 1
without sending anything when nothing listens at URL or its certificate does not verify, or for a bad
invocation; 130 when Ctrl-C stopped it, the report still printed: while sending, the run ends early
and its answers in flight are waited for (at most 5 s); while those are waited for, the wait ends.

Options:
  --api-key KEY      the API key a customer would enter in Segment (sent as the Basic username)
  --rate N           requests per second in all, shared out between the connections (default: as
                     fast as the answers come)
  --connections C    kept-alive connections, each with one request at a time (default ${DEFAULTS.connections}; at most N,
                     and ${MAX_CONNECTIONS})
  --duration S       seconds to send for (default ${DEFAULTS.duration}, at most ${MAX_DURATION}); Ctrl-C stops early and
                     still reports
  --settings JSON    the customer's custom settings, a JSON object, sent in X-Segment-Settings
                     (default {})
  --types T,T        only events of these types, in their shares of the mix, e.g. identify,track
                     for an endpoint that answers the others 501 (default: every type)
  --insecure         accept any TLS certificate (self-signed, another name); without it, the
                     certificate is verified before anything is sent
  -h, --help         show this help
`;
}

/** The `load` subcommand. Resolves with the exit code: 0 all answers 2xx in time, 130 stopped by Ctrl-C, else 1. */
export function loadMain(args: readonly string[], io: SenderIo = process): Promise<number> {
  return runSender(
    NAME,
    io,
    () => parseLoadArgs(args),
    loadUsage,
    (parsed, guarded) => load(parsed, guarded),
  );
}

async function load(parsed: { options: LoadOptions; insecure: boolean }, io: SenderIo): Promise<number> {
  const { options, insecure } = parsed;
  const problem = await probe(new URL(options.url), insecure);
  if (problem !== undefined) {
    io.stderr.write(`${NAME}: ${problem}\n`);
    return 1;
  }
  const pace = options.rate === undefined ? 'as fast as answered' : `at ${options.rate} req/s`;
  io.stdout.write(
    `Sending Segment events to ${shownUrl(options.url)} for ${options.duration} s over ${options.connections} connections, ${pace}\n`,
  );
  let figures: LoadFigures;
  try {
    // The report may be up to 5 s away: said, and what Ctrl-C does meanwhile.
    figures = await sendLoad(options, (inFlight) =>
      io.stdout.write(
        `Time is up: waiting for ${inFlight === 1 ? 'the answer' : `the ${inFlight} answers`} in flight (at most ${SEGMENT_TIMEOUT_MS / 1000} s; Ctrl-C ends the wait)\n`,
      ),
    );
  } catch (err) {
    io.stderr.write(`${NAME}: ${(err as Error).message}\n`);
    return 1;
  }
  io.stdout.write(report(figures));
  // Cut short: whatever the verdict on what was sent, not the run asked for (128 + SIGINT's number).
  if (figures.interrupted !== undefined) return 130;
  return verdict(figures).ok ? 0 : 1;
}

function parseLoadArgs(args: readonly string[]): { options: LoadOptions; insecure: boolean } | 'help' {
  const target = senderArgs(args, ['rate', 'connections', 'duration', 'types']);
  if (target === 'help') return 'help';
  const { url, apiKey, settings, insecure, values } = target;
  const text = (name: string) => values[name] as string | undefined;
  const rate = text('rate') === undefined ? undefined : positive('rate', text('rate') as string);
  const connections = positive('connections', text('connections') ?? String(DEFAULTS.connections));
  if (connections > MAX_CONNECTIONS) {
    throw new UsageError(`--connections must be at most ${MAX_CONNECTIONS}, not ${connections}`);
  }
  const duration = positive('duration', text('duration') ?? String(DEFAULTS.duration));
  if (duration > MAX_DURATION)
    throw new UsageError(`--duration must be at most ${MAX_DURATION} s (a day), not ${duration}`);
  const options: LoadOptions = {
    url,
    apiKey,
    settings: settings ?? {},
    // No more connections than requests a second: each has a share of every second to send.
    connections: Math.min(connections, rate ?? connections),
    duration,
    ...(rate !== undefined && { rate }),
    ...(text('types') !== undefined && { types: eventTypes(text('types') as string) }),
    insecure,
  };
  return { options, insecure };
}

function positive(name: string, text: string): number {
  if (!POSITIVE_INTEGER.test(text))
    throw new UsageError(`--${name} must be a positive integer, not "${text}"`);
  // Past this a number is not held exactly: the run would ask for another figure than the one given.
  if (!Number.isSafeInteger(Number(text))) {
    throw new UsageError(`--${name} must be at most ${Number.MAX_SAFE_INTEGER}, not "${text}"`);
  }
  return Number(text);
}

/** --types' list: each an event type, given at least once. */
function eventTypes(text: string): EventType[] {
  const names = text.split(',').map((name) => name.trim().toLowerCase());
  if (names.every((name) => name === '')) throw new UsageError('--types names no event type');
  for (const name of names) {
    if (!(EVENT_TYPES as readonly string[]).includes(name)) {
      throw new UsageError(`--types: "${name}" is not an event type (${EVENT_TYPES.join(', ')})`);
    }
  }
  return names as EventType[];
}
