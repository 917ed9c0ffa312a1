import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import type { CliConfig, ReloadedFiles } from './config.ts';
import { UsageError } from './config-keys.ts';
import type { Logger } from './log.ts';
import { READ_TIMEOUT_MS, readWithin } from './read-within.ts';
import { readRegularFileAsync, SMALL_FILE_MAX_BYTES } from './regular-file.ts';

/**
 * What SIGHUP does to the certificate, in the single process and in the primary of --workers: the pair
 * read again from its files, off the event loop, and given to `load`, so that a renewed certificate
 * (certbot, a secrets agent) is picked up without a restart. A pair that cannot be read (within
 * `readTimeoutMs`: a hung mount, read-within.ts), or that `load` refuses, is logged and the current one
 * stays; over plain HTTP there is nothing to reload, which is said only when there is no keys file or
 * secret file either (else it would be said beside every reload of theirs). A reload overtaken by a
 * later one while it read loads and says nothing: the later one read the files since. Whether a pair
 * was loaded.
 */
export async function reloadCertificate(
  { tlsFiles: files, keysFile, signatureSecretFile }: ReloadedFiles,
  log: Logger,
  load: (cert: Buffer, key: Buffer, files: NonNullable<CliConfig['tlsFiles']>) => void,
  read: (path: string) => Buffer | Promise<Buffer> = readPairFile,
  readTimeoutMs = READ_TIMEOUT_MS,
): Promise<boolean> {
  if (files === undefined) {
    if (keysFile === undefined && signatureSecretFile === undefined) {
      log.info({}, 'SIGHUP: no certificate to reload (plain HTTP)');
    }
    return false;
  }
  const reload = (reloads.get(files) ?? 0) + 1;
  reloads.set(files, reload);
  try {
    const within = (path: string) => readWithin(path, () => read(path), readTimeoutMs);
    const [cert, key] = await Promise.all([within(files.cert), within(files.key)]);
    if (reloads.get(files) !== reload) return false;
    checkPair(files, cert, key);
    load(cert, key, files);
    return true;
  } catch (err) {
    if (reloads.get(files) !== reload) return false;
    log.error(
      { cert: files.cert, reason: (err as Error).message },
      'certificate reload failed; keeping the current one',
    );
    return false;
  }
}

/** Reloads of each pair begun so far: only the latest loads. */
const reloads = new WeakMap<NonNullable<CliConfig['tlsFiles']>, number>();

/** A file of the pair, read on the thread pool: the loop answers requests while the disk is slow. */
const readPairFile = async (path: string) => (await readRegularFileAsync(path, SMALL_FILE_MAX_BYTES)).bytes;

/**
 * The pair read from --cert and --key, checked before TLS loads it, each fault said of its flag rather
 * than in OpenSSL's words ("key values mismatch", "no start line"): a key that is not the certificate's,
 * files swapped, a file that holds something else.
 */
export function checkPair(files: NonNullable<CliConfig['tlsFiles']>, cert: Buffer, key: Buffer): void {
  const certificate = checkChain(files.cert, cert);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new UsageError(`--key ${files.key} holds no PEM private key (without a passphrase)`);
  }
  // The pair compared without a TLS context (~2 ms at start; the server builds its own).
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new UsageError(`--key ${files.key} is not the key of the certificate in --cert ${files.cert}`);
  }
  // Under 2048 bits, deprecated since 2013 (NIST SP 800-131A) and refused by many TLS clients (OpenSSL at
  // security level 2); this process's own OpenSSL refuses one under 1024, in its words ("ee key too small").
  const bits = privateKey.asymmetricKeyDetails?.modulusLength;
  const kind = MODULUS_KEYS.get(privateKey.asymmetricKeyType ?? '');
  if (kind !== undefined && bits !== undefined && bits < 2048) {
    throw new UsageError(`--key ${files.key} is ${kind} key of ${bits} bits: give one of 2048 bits or more`);
  }
}

/** Keys whose strength is their modulus's length, as a message names them. */
const MODULUS_KEYS: ReadonlyMap<string, string> = new Map([
  ['rsa', 'an RSA'],
  ['rsa-pss', 'an RSA-PSS'],
  ['dsa', 'a DSA'],
]);

// A certificate dated this far ahead is taken: this host's clock and its CA's may differ by as much.
const CLOCK_SKEW_MS = 5 * 60_000; // 5 min

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g;

/**
 * The certificate (the first of the file) once each of the file's certificates reads as PEM, and it is
 * valid now. X509Certificate reads DER too, and only a file's first certificate: TLS then refused the
 * file in OpenSSL's words ("no start line", "bad end line"). An expired certificate, or one dated ahead
 * of the clock, it would serve, failing the handshake of every sender whose clock agrees with this one.
 */
function checkChain(file: string, cert: Buffer): X509Certificate {
  const text = cert.toString('latin1');
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new UsageError(`--cert ${file} holds no PEM certificate`);
  const begun = text.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0;
  const chain = blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw new UsageError(`--cert ${file}: its certificate ${i + 1} is cut short or unreadable`);
    }
  });
  if (begun > blocks.length) {
    throw new UsageError(`--cert ${file}: its certificate ${blocks.length + 1} is cut short or unreadable`);
  }
  const leaf = chain[0] as X509Certificate;
  const now = Date.now();
  if (Date.parse(leaf.validTo) < now) throw new UsageError(`--cert ${file} expired on ${leaf.validTo}`);
  if (Date.parse(leaf.validFrom) > now + CLOCK_SKEW_MS) {
    throw new UsageError(`--cert ${file} is not valid until ${leaf.validFrom} (check this host's clock)`);
  }
  return leaf;
}
