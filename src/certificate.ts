import type { CliConfig } from './config.ts';
import type { Logger } from './log.ts';
import { readRegularFile } from './regular-file.ts';

/**
 * What SIGHUP does to the certificate, in the single process and in the primary of --workers: the pair
 * read again from its files and given to `load`, so that a renewed certificate (certbot, a secrets
 * agent) is picked up without a restart. A pair that cannot be read, or that `load` refuses, is logged
 * and the current one stays; over plain HTTP there is nothing to reload. Whether a pair was loaded.
 */
export function reloadCertificate(
  files: CliConfig['tlsFiles'],
  log: Logger,
  load: (cert: Buffer, key: Buffer, files: NonNullable<CliConfig['tlsFiles']>) => void,
  read: (path: string) => Buffer = readRegularFile,
): boolean {
  if (files === undefined) {
    log.info({}, 'SIGHUP: no certificate to reload (plain HTTP)');
    return false;
  }
  try {
    load(read(files.cert), read(files.key), files);
    return true;
  } catch (err) {
    log.error(
      { cert: files.cert, reason: (err as Error).message },
      'certificate reload failed; keeping the current one',
    );
    return false;
  }
}
