import type { ApiKeySpec } from './auth.ts';
import { flagName } from './config-said.ts';
import { OPTIONS, type OptionName } from './option-table.ts';

// Settings the rest of the configuration leaves unused: said at start rather than silently ignored. A
// warning, not a refusal: a unit's variables are often set for every instance of a service, and an
// instance that does not use one still starts (as `--out` beside `--handlers` does).

/**
 * What is given and not used, or not as meant, each said of its flag (the caller says it of its variable
 * where set). `keys`: the API keys' specs, as read.
 */
export function unusedSettings(
  read: (name: OptionName) => string | boolean | undefined,
  keys: readonly ApiKeySpec[],
): string[] {
  const unused: string[] = [];
  // Only --api-key can give one: the variable and the keys file split keys at white space.
  if (keys.some((spec) => /\s/.test(spec.key))) {
    unused.push(
      'an --api-key holds white space: it is one key, with the space in it; give --api-key once a key',
    );
  }
  // Given where no file store is kept. Never the --postgres URL, which may hold a password.
  const handlers = read('handlers');
  const out = read('out');
  if (
    out !== undefined &&
    out !== OPTIONS.out.default &&
    (handlers !== undefined || read('postgres') !== undefined)
  ) {
    const elsewhere = handlers !== undefined ? `handlers from ${handlers}` : 'events stored in PostgreSQL';
    unused.push(`--out is not used (${elsewhere})`);
  }
  if (read('postgresTable') !== undefined && read('postgres') === undefined) {
    unused.push('--postgres-table is not used: it names the table of --postgres, which is not given');
  }
  // A key's own secret (`secret=` in the keys file) is checked under the switch too.
  const secret = read('signatureSecret') ?? read('signatureSecretFile');
  const keysCheckSignatures = keys.some((spec) => spec.signatureSecret !== undefined);
  if (read('signatureLegacyBatch') === true && secret === undefined && !keysCheckSignatures) {
    unused.push(
      '--signature-legacy-batch is not used: no --signature-secret is given, so no signature is checked',
    );
  }
  // No flag moves the liveness check: a path given its path turns it off, and its probe gets a 405.
  const live = OPTIONS.livePath.default;
  const taker = (['path', 'metricsPath'] as const).find((name) => read(name) === live);
  if (taker !== undefined)
    unused.push(`there is no liveness check: --${flagName(OPTIONS[taker])} takes ${live}`);
  const level = read('logLevel') ?? OPTIONS.logLevel.default;
  if (read('accessLog') === true && level !== 'debug' && level !== 'info') {
    unused.push(
      `--access-log is not used: its lines are written at level info, which --log-level ${level} leaves out`,
    );
  }
  return unused;
}
