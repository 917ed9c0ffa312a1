import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import type { CliConfig } from './config.ts';
import { UsageError } from './config-keys.ts';
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
    const cert = read(files.cert);
    const key = read(files.key);
    checkPair(files, cert, key);
    load(cert, key, files);
    return true;
  } catch (err) {
    log.error(
      { cert: files.cert, reason: (err as Error).message },
      'certificate reload failed; keeping the current one',
    );
    return false;
  }
}

/**
 * The pair read from --cert and --key, checked before TLS loads it, each fault said of its flag rather
 * than in OpenSSL's words ("key values mismatch", "no start line"): a key that is not the certificate's,
 * files swapped, a file that holds something else.
 */
export function checkPair(files: NonNullable<CliConfig['tlsFiles']>, cert: Buffer, key: Buffer): void {
  let certificate: X509Certificate;
  let privateKey: KeyObject;
  try {
    certificate = new X509Certificate(cert);
  } catch {
    throw new UsageError(`--cert ${files.cert} holds no PEM certificate`);
  }
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new UsageError(`--key ${files.key} holds no PEM private key (without a passphrase)`);
  }
  // The pair compared without a TLS context (~2 ms at start; the server builds its own).
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new UsageError(`--key ${files.key} is not the key of the certificate in --cert ${files.cert}`);
  }
}
