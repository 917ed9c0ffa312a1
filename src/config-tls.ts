import { checkPair } from './certificate.ts';
import type { Flags } from './config.ts';
import { type ReadFile, UsageError } from './config-keys.ts';
import type { OptionName } from './option-table.ts';

// --cert, --key and --http: what the server is given to serve HTTPS with, or that it serves plain HTTP.

/**
 * The certificate and key, read and checked; none with --http. --http beside them is refused when both
 * come from one place (a command line, an environment file), or the switch from the environment: a
 * SEGMENT_ENDPOINT_HTTP=1 left set must not turn a certificate's unit into plain HTTP. Given as a flag
 * over a certificate in the environment, the flag wins, and the certificate is said to be unused.
 */
export function tlsOf(
  read: (name: OptionName) => string | boolean | undefined,
  flags: Flags,
  readFile: ReadFile,
  unused: string[],
): { files: { cert: string; key: string }; pair: { cert: Buffer; key: Buffer } } | undefined {
  const cert = read('cert') as string | undefined;
  const key = read('key') as string | undefined;
  if (read('http') === true) {
    if (cert === undefined && key === undefined) return undefined;
    if (flags.http !== true || flags.cert !== undefined || flags.key !== undefined) {
      throw new UsageError(
        'give one of --http and --cert/--key: plain HTTP behind a TLS-terminating proxy, or HTTPS with that certificate',
      );
    }
    const given = theFlags(cert !== undefined, key !== undefined, '--cert/--key');
    unused.push(`${given} not used: --http serves plain HTTP`);
    return undefined;
  }
  if (cert === undefined || key === undefined) {
    const missing = theFlags(cert === undefined, key === undefined, '--cert and --key');
    throw new UsageError(`${missing} required for HTTPS (or --http behind a TLS-terminating proxy)`);
  }
  const files = { cert, key };
  const pair = { cert: readFile(cert, '--cert'), key: readFile(key, '--key') };
  checkPair(files, pair.cert, pair.key);
  return { files, pair };
}

/** `--cert is`, `--key is`, or both (`both are`), as `cert` and `key` say which are meant. */
const theFlags = (cert: boolean, key: boolean, both: string): string =>
  cert && key ? `${both} are` : cert ? '--cert is' : '--key is';
