// The `test` subcommand's command line: its usage, its flags, and the exit code of a run.
import { probe } from '../probe.ts';
import { runSender, type SenderIo, senderArgs } from '../sender-args.ts';
import { type RunOptions, run } from './run.ts';

const NAME = 'segment-endpoint test';

export function testUsage(): string {
  return `Usage: ${NAME} URL --api-key KEY [--settings JSON] [--insecure]

Sends a suite of events to URL exactly as Segment sends them (headers included): every event type,
casing variants, a delete, and deliberately bad ones. Prints each request, the status and message
answered, PASS or FAIL, then "N passed, M failed". Exits 0 only if every good event was accepted
(200 or 202) and every bad one got the right 4xx. A connection closed after acceptances, or a GET
answered otherwise than 405 with Allow: POST, is a warning before the summary, not a failure.

Options:
  --api-key KEY      the API key a customer would enter in Segment (sent as the Basic username)
  --settings JSON    the customer's custom settings, a JSON object, sent in X-Segment-Settings
  --insecure         accept any TLS certificate (self-signed, another name)
  -h, --help         show this help
`;
}

/** The `test` subcommand. Resolves with the exit code: 0 all passed, 1 a failure or a bad invocation. */
export function testMain(args: readonly string[], io: SenderIo = process): Promise<number> {
  return runSender(
    NAME,
    io,
    () => parseTestArgs(args),
    testUsage,
    async ({ url, options }, guarded) => {
      // Nothing listening, a certificate that does not verify, plain HTTP on https://: said once, with
      // a hint, rather than as the same error in every case.
      const problem = await probe(new URL(url), options.insecure === true);
      if (problem !== undefined) {
        io.stderr.write(`${NAME}: ${problem}\n`);
        return 1;
      }
      const summary = await run(url, options, (line) => guarded.stdout.write(`${line}\n`));
      return summary.failed === 0 ? 0 : 1;
    },
  );
}

function parseTestArgs(args: readonly string[]): { url: string; options: RunOptions } | 'help' {
  const target = senderArgs(args, []);
  if (target === 'help') return 'help';
  const { url, apiKey, settings, insecure } = target;
  return { url, options: { apiKey, ...(settings && { settings }), insecure } };
}
