// Certificates made at test time (no private key is committed), an endpoint listening over TLS with
// one, and the certificate a TLS connection is offered.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type DetailedPeerCertificate } from 'node:tls';
import { createServer, type EndpointServer, type ServerOptions, silentLogger } from '../src/index.ts';
import { API_KEY } from './helpers.ts';

export interface TestCert {
  cert: Buffer;
  key: Buffer;
}

let cached: TestCert | undefined;

/** A self-signed certificate for localhost, made now with openssl: no private key is committed. */
export function testCert(): TestCert {
  if (cached !== undefined) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-cert-'));
  try {
    const files = makeCert(dir, 'test');
    cached = { cert: readFileSync(files.cert), key: readFileSync(files.key) };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes a new self-signed localhost certificate (`O=<name>`) and its key into `dir`. */
export function makeCert(
  dir: string,
  name: string,
  keyType = ['ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'],
): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      ...keyType,
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=localhost/O=${name}`,
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

/**
 * A certificate authority (`ca.crt`) and a localhost certificate it signed (`signed.crt`, `signed.key`),
 * written into `dir`: the leaf's file holds the leaf alone, its issuer apart.
 */
export function makeSignedCert(dir: string): { ca: string; cert: string; key: string } {
  const at = (file: string) => join(dir, file);
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore', cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-days', '1', '-subj', '/CN=Test CA', '-keyout', 'ca.key', '-out', 'ca.crt']);
  run(['req', ...ec, '-subj', '/CN=localhost', '-keyout', 'signed.key', '-out', 'signed.csr']);
  writeFileSync(at('signed.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  const sign = '-CA ca.crt -CAkey ca.key -CAcreateserial -days 1 -extfile signed.ext'.split(' ');
  run(['x509', '-req', '-in', 'signed.csr', ...sign, '-out', 'signed.crt']);
  return { ca: at('ca.crt'), cert: at('signed.crt'), key: at('signed.key') };
}

/** A self-signed localhost certificate valid only in January 2020, and its key, written into `dir`. */
export function makeExpiredCert(dir: string): { cert: string; key: string } {
  return makeDatedCert(dir, 'expired', '20200101000000Z', '20200201000000Z');
}

/**
 * Writes a self-signed localhost certificate `<name>.crt` valid from `start` to `end` (openssl's
 * YYYYMMDDHHMMSSZ), and its key, into `dir` (`openssl ca`, which takes the dates that `openssl req`
 * does not).
 */
export function makeDatedCert(
  dir: string,
  name: string,
  start: string,
  end: string,
): { cert: string; key: string } {
  const at = (file: string) => join(dir, file);
  writeFileSync(at('ca.cnf'), EXPIRED_CA);
  writeFileSync(at('index.txt'), '');
  writeFileSync(at('serial'), '01\n');
  const key = at(`${name}.key`);
  const cert = at(`${name}.crt`);
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore', cwd: dir });
  run(
    ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
      '-subj',
      '/CN=localhost',
      '-keyout',
      key,
      '-out',
      at(`${name}.csr`),
    ]),
  );
  run(
    ['ca', '-batch', '-notext', '-config', at('ca.cnf'), '-selfsign', '-keyfile', key]
      .concat(['-in', at(`${name}.csr`), '-out', cert])
      .concat(['-startdate', start, '-enddate', end]),
  );
  return { cert, key };
}

const EXPIRED_CA = `[ca]
default_ca = d
[d]
database = index.txt
serial = serial
new_certs_dir = .
default_md = sha256
policy = p
unique_subject = no
[p]
commonName = supplied
`;

/**
 * `createServer` over TLS with the test certificate, on a free port of 127.0.0.1, taking API_KEY and
 * logging nothing; `options` add to these or replace them. Resolves once it listens.
 */
export async function listenTls(
  options: Partial<ServerOptions> & Pick<ServerOptions, 'handlers'>,
): Promise<{ endpoint: EndpointServer; url: string; port: number }> {
  const endpoint = createServer({
    tls: testCert(),
    host: '127.0.0.1',
    port: 0,
    apiKeys: [API_KEY],
    log: silentLogger,
    ...options,
  });
  const url = await endpoint.listen();
  return { endpoint, url, port: Number(new URL(url).port) };
}

/** The certificates a fresh TLS connection to `port` is sent, whoever signed them, with their issuers. */
function servedCertificate(port: number): Promise<DetailedPeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate(true));
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

/** The fingerprint of the certificate a fresh TLS connection to `port` is offered, whoever signed it. */
export const servedFingerprint = async (port: number): Promise<string> =>
  (await servedCertificate(port)).fingerprint256;

/** The subjects' common names of the certificates a fresh TLS connection to `port` is sent, in order. */
export async function servedChain(port: number): Promise<string[]> {
  const names: string[] = [];
  const seen = new Set<string>();
  for (
    let cert: DetailedPeerCertificate | undefined = await servedCertificate(port);
    cert?.fingerprint256 !== undefined && !seen.has(cert.fingerprint256);
    cert = cert.issuerCertificate
  ) {
    seen.add(cert.fingerprint256);
    names.push(cert.subject.CN as string);
  }
  return names;
}
