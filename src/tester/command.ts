// The `test` subcommand's command line: its usage, its flags, and the exit code of a run.
import { parseArgs } from 'node:util';
import { UsageError } from '../config.ts';
import { isPlainObject } from '../json.ts';
import { type RunOptions, run } from './run.ts';

const NAME = 'segment-endpoint test';

export function testUsage(): string {
  return `Usage: ${NAME} URL --api-key KEY [--settings JSON] [--insecure]

Sends a suite of events to URL exactly as Segment sends them (headers included): every event type,
casing variants, a delete, and deliberately bad ones. Prints each request, the status and message
answered, PASS or FAIL, then "N passed, M failed". Exits 0 only if every good event was accepted
(200 or 202) and every bad one got the right 4xx.

Options:
  --api-key KEY      the API key a customer would enter in Segment (sent as the Basic username)
  --settings JSON    the customer's custom settings, a JSON object, sent in X-Segment-Settings
  --insecure         accept any TLS certificate (self-signed, another name)
  -h, --help         show this help
`;
}

interface Output {
  write(text: string): unknown;
}

/** The `test` subcommand. Resolves with the exit code: 0 all passed, 1 a failure or a bad invocation. */
export async function testMain(
  args: readonly string[],
  io: { readonly stdout: Output; readonly stderr: Output } = process,
): Promise<number> {
  let parsed: { url: string; options: RunOptions } | 'help';
  try {
    parsed = parseTestArgs(args);
  } catch (err) {
    const hint = err instanceof UsageError ? `\nTry '${NAME} --help'.` : '';
    io.stderr.write(`${NAME}: ${(err as Error).message}${hint}\n`);
    return 1;
  }
  if (parsed === 'help') {
    io.stdout.write(testUsage());
    return 0;
  }
  const summary = await run(parsed.url, parsed.options, (line) => io.stdout.write(`${line}\n`));
  return summary.failed === 0 ? 0 : 1;
}

function parseTestArgs(args: readonly string[]): { url: string; options: RunOptions } | 'help' {
  let values: { 'api-key'?: string; settings?: string; insecure?: boolean; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...args],
      options: {
        'api-key': { type: 'string' },
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
  const protocol = URL.canParse(url) ? new URL(url).protocol : undefined;
  if (protocol !== 'http:' && protocol !== 'https:') {
    throw new UsageError(`"${url}" is not an http:// or https:// URL`);
  }
  const apiKey = values['api-key'];
  if (apiKey === undefined || apiKey === '') {
    throw new UsageError('--api-key is required: the key a customer of the endpoint would enter in Segment');
  }
  let settings: Record<string, unknown> | undefined;
  if (values.settings !== undefined) {
    let value: unknown;
    try {
      value = JSON.parse(values.settings);
    } catch {}
    if (!isPlainObject(value)) {
      throw new UsageError(
        `--settings must be a JSON object, e.g. '{"region":"eu"}', not ${values.settings}`,
      );
    }
    settings = value;
  }
  return { url, options: { apiKey, ...(settings && { settings }), insecure: values.insecure ?? false } };
}
