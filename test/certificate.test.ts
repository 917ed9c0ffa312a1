import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkPair } from '../src/certificate.ts';
import { makeCert, makeDatedCert } from './helpers-cert.ts';

// The pair --cert and --key name, checked before TLS loads it (the command's own refusals, worded, are
// in cli-flags.test.ts): what a sender's TLS client would refuse is refused at start and on SIGHUP.

const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-certificate-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const check = (files: { cert: string; key: string }) =>
  checkPair(files, readFileSync(files.cert), readFileSync(files.key));

/** openssl's YYYYMMDDHHMMSSZ for `minutes` from now. */
const fromNow = (minutes: number) =>
  `${new Date(Date.now() + minutes * 60_000).toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;

test('a certificate dated a few minutes ahead is taken: the clocks of this host and its CA may differ by as much', () => {
  check(makeDatedCert(dir, 'soon', fromNow(2), fromNow(60 * 24)));
  assert.throws(
    () => check(makeDatedCert(dir, 'later', fromNow(30), fromNow(60 * 24))),
    /^Error: --cert .*later\.crt is not valid until .* GMT \(check this host's clock\)$/,
  );
});

test('RSA keys under 2048 bits are refused, RSA-PSS ones too, and elliptic-curve keys taken', () => {
  const weak: Array<[string, string[]]> = [
    ['rsa', ['rsa:1024']],
    ['rsa-pss', ['rsa-pss', '-pkeyopt', 'rsa_keygen_bits:1024']],
  ];
  for (const [name, keyType] of weak) {
    assert.throws(
      () => check(makeCert(dir, name, keyType)),
      /^Error: --key .* is an? (RSA|RSA-PSS) key of 1024 bits: give one of 2048 bits or more/,
      name,
    );
  }
  check(makeCert(dir, 'rsa-2048', ['rsa:2048']));
  check(makeCert(dir, 'ec', ['ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']));
});
