import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkPair, reloadCertificate } from '../src/certificate.ts';
import { jsonLogger } from '../src/log.ts';
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

/** A log that keeps each line's message and reason, and a `load` that keeps the certificates it is given. */
function reloading() {
  const lines: string[] = [];
  const log = jsonLogger('info', (line) => {
    const { msg, reason } = JSON.parse(line);
    lines.push(reason === undefined ? msg : `${msg}: ${reason}`);
  });
  const loaded: string[] = [];
  const load = (cert: Buffer) => void loaded.push(cert.toString());
  return { lines, log, loaded, load };
}

test('a SIGHUP whose certificate is never read (a hung mount) fails after its deadline, the loop free meanwhile', async () => {
  // The pair was read on the event loop: a read that never returned held every request and signal.
  const files = makeCert(dir, 'hung');
  const { lines, log, loaded, load } = reloading();
  const read = (path: string) =>
    path === files.cert ? new Promise<Buffer>(() => {}) : Promise.resolve(readFileSync(path));
  let turns = 0;
  const counting = setInterval(() => turns++, 1);
  const reloaded = await reloadCertificate(
    { tlsFiles: files, keysFile: undefined, signatureSecretFile: undefined },
    log,
    load,
    read,
    60,
  );
  clearInterval(counting);
  assert.equal(reloaded, false);
  // Any turn at all shows the loop was not held; how many a loaded machine gives in 60 ms is its own.
  assert.ok(turns > 0, `the loop ran while the read hung: ${turns} turns`);
  assert.deepEqual(loaded, []);
  assert.equal(lines.length, 1);
  assert.match(
    lines[0] ?? '',
    /^certificate reload failed; keeping the current one: .*hung\.crt was not read within 0\.06 s \(a hung mount\?\)$/,
  );
});

test('two SIGHUPs in a row: the pair read by the second is kept, though the first was read after it', async () => {
  // Read off the loop, the first SIGHUP's pair (read before the renewal) can arrive last: it must not
  // replace the renewed one.
  const older = makeCert(dir, 'older');
  const newer = makeCert(dir, 'newer');
  const tlsFiles = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
  const renew = (pair: { cert: string; key: string }) => {
    copyFileSync(pair.cert, tlsFiles.cert);
    copyFileSync(pair.key, tlsFiles.key);
  };
  const { lines, log, loaded, load } = reloading();
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const slowly = async (path: string) => {
    const bytes = readFileSync(path);
    await held;
    return bytes;
  };
  renew(older);
  const first = reloadCertificate(
    { tlsFiles, keysFile: undefined, signatureSecretFile: undefined },
    log,
    load,
    slowly,
  );
  renew(newer);
  const second = reloadCertificate(
    { tlsFiles, keysFile: undefined, signatureSecretFile: undefined },
    log,
    load,
    readFileSync,
  );
  assert.equal(await second, true);
  release();
  assert.equal(await first, false, 'overtaken: it loads nothing');
  assert.deepEqual(loaded, [readFileSync(newer.cert).toString()]);
  assert.deepEqual(lines, []);
});
