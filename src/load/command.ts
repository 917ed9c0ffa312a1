// The `load` subcommand's command line: its usage, its flags, and the exit code of a run.
import { parseArgs } from 'node:util';
import { UsageError } from '../config.ts';
import { isPlainObject } from '../json.ts';
import { MIX, RETRY_EVERY } from './mix.ts';
import { probe } from './probe.ts';
import { type LoadFigures, report, verdict } from './report.ts';
import { type LoadOptions, sendLoad } from './run.ts';

const NAME = 'segment-endpoint load';

const DEFAULTS = {
  connections: 10,
  duration: 10, // s
};

const POSITIVE_INTEGER = /^[1-9]\d{0,8}$/;

export function loadUsage(): string {
  const mix = Object.entries(MIX)
    .map(([type, share]) => `${type} ${share} %`)
    .join(', ');
  return `Usage: ${NAME} URL --api-key KEY [--rate N] [--connections C] [--duration S] [--insecure]
       [--settings JSON]

Sends Segment-shaped traffic to URL (this endpoint or any other) the way Segment sends it: one event
per POST with Segment's headers, over kept-alive connections, each event a new messageId, and 1
request in ${RETRY_EVERY} a retry of an event already sent (same messageId and body). Every type comes, in a
track-heavy mix:
  ${mix}
Prints requests/s, latency percentiles, answers by status, errors and timeouts, and a verdict against
Segment's 5 s timeout.

Exits 0 only if every answer was 2xx and none took over 5 s; 1 otherwise, and 1 without sending
anything when nothing listens at URL or its certificate does not verify, or for a bad invocation.

Options:
  --api-key KEY      the API key a customer would enter in Segment (sent as the Basic username)
  --rate N           requests per second in all, shared out between the connections (default: as
                     fast as the answers come)
  --connections C    kept-alive connections, each with one request at a time (default ${DEFAULTS.connections}; at most N)
  --duration S       seconds to send for (default ${DEFAULTS.duration}); Ctrl-C stops early and still reports
  --settings JSON    the customer's custom settings, a JSON object, sent in X-Segment-Settings
                     (default {})
  --insecure         accept any TLS certificate (self-signed, another name); without it, the
                     certificate is verified before anything is sent
  -h, --help         show this help
`;
}

interface Output {
  write(text: string): unknown;
}

/** The `load` subcommand. Resolves with the exit code: 0 all answers 2xx in time, else 1. */
export async function loadMain(
  args: readonly string[],
  io: { readonly stdout: Output; readonly stderr: Output } = process,
): Promise<number> {
  let parsed: { options: LoadOptions; insecure: boolean } | 'help';
  try {
    parsed = parseLoadArgs(args);
  } catch (err) {
    const hint = err instanceof UsageError ? `\nTry '${NAME} --help'.` : '';
    io.stderr.write(`${NAME}: ${(err as Error).message}${hint}\n`);
    return 1;
  }
  if (parsed === 'help') {
    io.stdout.write(loadUsage());
    return 0;
  }
  const { options, insecure } = parsed;
  const problem = await probe(new URL(options.url), insecure);
  if (problem !== undefined) {
    io.stderr.write(`${NAME}: ${problem}\n`);
    return 1;
  }
  const pace = options.rate === undefined ? 'as fast as answered' : `at ${options.rate} req/s`;
  io.stdout.write(
    `Sending Segment events to ${options.url} for ${options.duration} s over ${options.connections} connections, ${pace}\n`,
  );
  let figures: LoadFigures;
  try {
    figures = await sendLoad(options);
  } catch (err) {
    io.stderr.write(`${NAME}: ${(err as Error).message}\n`);
    return 1;
  }
  io.stdout.write(report(figures));
  return verdict(figures).ok ? 0 : 1;
}

function parseLoadArgs(args: readonly string[]): { options: LoadOptions; insecure: boolean } | 'help' {
  let values: Partial<Record<'api-key' | 'rate' | 'connections' | 'duration' | 'settings', string>> & {
    insecure?: boolean;
    help?: boolean;
  };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...args],
      options: {
        'api-key': { type: 'string' },
        rate: { type: 'string' },
        connections: { type: 'string' },
        duration: { type: 'string' },
        settings: { type: 'string' },
        insecure: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  const [url, extra] = positionals;
  if (url === undefined) throw new UsageError('the endpoint URL is required, e.g. https://localhost:8443/');
  if (extra !== undefined) throw new UsageError(`one URL only, not also "${extra}"`);
  checkUrl(url);
  const apiKey = values['api-key'];
  if (apiKey === undefined || apiKey === '') {
    throw new UsageError('--api-key is required: the key a customer of the endpoint would enter in Segment');
  }
  const rate = values.rate === undefined ? undefined : positive('rate', values.rate);
  const connections = positive('connections', values.connections ?? String(DEFAULTS.connections));
  const options: LoadOptions = {
    url,
    apiKey,
    settings: values.settings === undefined ? {} : settingsObject(values.settings),
    // autocannon would open no more connections than requests per second anyway (lib/run.js).
    connections: Math.min(connections, rate ?? connections),
    duration: positive('duration', values.duration ?? String(DEFAULTS.duration)),
    ...(rate !== undefined && { rate }),
  };
  return { options, insecure: values.insecure ?? false };
}

function checkUrl(url: string): void {
  const parsed = URL.canParse(url) ? new URL(url) : undefined;
  if (parsed?.protocol !== 'http:' && parsed?.protocol !== 'https:') {
    throw new UsageError(`"${url}" is not an http:// or https:// URL`);
  }
  // autocannon would turn them into an Authorization header in place of Segment's.
  if (parsed.username !== '' || parsed.password !== '') {
    throw new UsageError('the URL must not carry credentials: give the key with --api-key');
  }
}

function positive(name: string, text: string): number {
  if (!POSITIVE_INTEGER.test(text))
    throw new UsageError(`--${name} must be a positive integer, not "${text}"`);
  return Number(text);
}

function settingsObject(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {}
  if (!isPlainObject(value)) {
    throw new UsageError(`--settings must be a JSON object, e.g. '{"region":"eu"}', not ${text}`);
  }
  return value;
}
