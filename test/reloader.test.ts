import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ApiKeySpec } from '../src/auth.ts';
import { ConfigurationFiles } from '../src/cluster/configuration-files.ts';
import type { ReadFile } from '../src/config-keys.ts';
import { reloadKeysInSlices } from '../src/keys-reload.ts';
import { jsonLogger } from '../src/log.ts';
import { reloadSecretFile } from '../src/secret-reload.ts';
import type { EndpointServer } from '../src/server.ts';
import type { Steps } from '../src/slices.ts';
import { reloader } from '../src/start.ts';

// What a SIGHUP loads in a process that serves (start.ts reloader): all it can in the single process, and
// in a worker of --workers only the files its primary sent, since those are what the primary loaded.

/** A keys file's parse that gives `keys`, as steps (slices.ts) with one slice, whatever the file holds. */
const steps = (keys: ApiKeySpec[]) =>
  function* (): Steps<ApiKeySpec[]> {
    yield;
    return keys;
  };

/**
 * A keys file that holds 'large' (older-key, parsed in 20 slices of 2 ms) until `replace` makes it
 * 'small' (newer-key, one slice): the reload of the first ends after the reload of the second.
 */
function replacedKeysFile() {
  let file = 'large';
  const slowly = function* (): Steps<ApiKeySpec[]> {
    for (let slice = 0; slice < 20; slice++) {
      for (const until = performance.now() + 2; performance.now() < until; );
      yield;
    }
    return [{ key: 'older-key' }];
  };
  const keysFile = {
    path: '/keys',
    keys: (read: ReadFile) =>
      read('/keys', '--api-keys-file').toString() === 'large' ? slowly() : steps([{ key: 'newer-key' }])(),
  };
  const replace = () => {
    file = 'small';
  };
  return { keysFile, read: () => Buffer.from(file), replace };
}

function serving() {
  const lines: string[] = [];
  const loaded: string[][] = [];
  const secrets: unknown[] = [];
  const endpoint = {
    reloadTls: () => lines.push('tls loaded'),
    handler: {
      loadApiKeys: async (keys: ApiKeySpec[]) => void loaded.push(keys.map((spec) => spec.key)),
      setSignatureSecret: (secret: unknown) => void secrets.push(secret),
    },
  } as unknown as EndpointServer;
  const log = jsonLogger('info', (line) => lines.push(JSON.parse(line).msg));
  return { lines, loaded, secrets, endpoint, log };
}

test('the secret file: read and loaded by the single process; by a worker only when its primary sent it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-secret-'));
  try {
    const path = join(dir, 'secret');
    writeFileSync(path, 'old\nnew\n', { mode: 0o600 });
    const config = { tlsFiles: undefined, keysFile: undefined, signatureSecretFile: path };
    const single = serving();
    await reloader(config, single.endpoint, single.log)();
    assert.deepEqual(single.secrets, [['old', 'new']]);
    assert.deepEqual(single.lines, ['signature secret reloaded']);
    // A worker told of the keys file alone (what its primary loaded) leaves its secret as it is.
    const worker = serving();
    const sent = () => Buffer.from('from-primary');
    await reloader(config, worker.endpoint, worker.log, sent)(['/keys']);
    assert.deepEqual(worker.secrets, []);
    await reloader(config, worker.endpoint, worker.log, sent)([path]);
    assert.deepEqual(worker.secrets, ['from-primary']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("two SIGHUPs in a row: the second's secrets are the ones kept, though the first's read returned last", async () => {
  const { lines, log } = serving();
  const loaded: unknown[] = [];
  let first: ((bytes: Buffer) => void) | undefined;
  const reads = [
    () => new Promise<Buffer>((resolve) => (first = resolve)),
    () => Buffer.from('second-secret\n'),
  ];
  const read = () => (reads.shift() as () => Buffer | Promise<Buffer>)();
  const reload = () => reloadSecretFile('/secret', log, (secrets) => void loaded.push(secrets), read);
  const older = reload();
  assert.equal(await reload(), true);
  first?.(Buffer.from('first-secret\n'));
  assert.equal(await older, false, 'overtaken: it loads nothing');
  assert.deepEqual(loaded, ['second-secret']);
  assert.deepEqual(lines, []);
});

test('the primary sends its workers the secret file it loaded, and keeps its bytes for workers forked later; one it refuses, it does not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-secret-'));
  try {
    const path = join(dir, 'secret');
    writeFileSync(path, 'first\n', { mode: 0o600 });
    const files = new ConfigurationFiles(new Map([[path, readFileSync(path)]]), {
      tlsFiles: undefined,
      keysFile: undefined,
      signatureSecretFile: path,
    });
    const { lines, log } = serving();
    const forked = performance.now();
    writeFileSync(path, 'first\nsecond\n');
    const loaded = await files.reload(log);
    assert.equal(loaded?.what, 'the signature secret');
    const message = loaded?.message;
    assert.deepEqual(message?.se === 'reload' && [...message.files.keys()], [path]);
    const all = files.all();
    assert.deepEqual(all.se === 'files' && [...all.files.keys()], [path]);
    assert.ok(files.reloadedSince(forked) !== undefined, 'a worker forked before is told again');
    writeFileSync(path, '');
    assert.equal(await files.reload(log), undefined);
    assert.match(lines.join('\n'), /signature secret reload failed/);
    const kept = files.all();
    assert.equal(kept.se === 'files' && kept.files.get(path)?.toString(), 'first\nsecond\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a worker over plain HTTP sent the keys file loads the keys and says nothing of a certificate', async () => {
  // Each worker said "SIGHUP: no certificate to reload (plain HTTP)" at every keys reload: the primary's
  // message named the keys file alone, and a certificate that is not there was taken as sent.
  const { lines, loaded, endpoint, log } = serving();
  const keysFile = { path: '/keys', keys: steps([{ key: 'second-key' }]) };
  const reload = reloader(
    { tlsFiles: undefined, keysFile, signatureSecretFile: undefined },
    endpoint,
    log,
    () => Buffer.from(''),
  );
  await reload(['/keys']);
  assert.deepEqual(loaded, [['second-key']]);
  assert.deepEqual(lines, ['API keys reloaded']);
});

test('the single process over plain HTTP loads the keys; "no certificate" only where nothing is reloaded', async () => {
  const { lines, loaded, endpoint, log } = serving();
  const keysFile = { path: '/keys', keys: steps([{ key: 'second-key' }]) };
  await reloader({ tlsFiles: undefined, keysFile, signatureSecretFile: undefined }, endpoint, log, () =>
    Buffer.from(''),
  )();
  assert.deepEqual(loaded, [['second-key']]);
  assert.deepEqual(lines, ['API keys reloaded']);
  await reloader(
    { tlsFiles: undefined, keysFile: undefined, signatureSecretFile: undefined },
    endpoint,
    log,
  )();
  assert.deepEqual(lines, ['API keys reloaded', 'SIGHUP: no certificate to reload (plain HTTP)']);
});

test('a worker forked before a SIGHUP is told again of what that SIGHUP loaded, and of nothing else', async () => {
  // It was told to reload every file: it loaded the primary's bytes, right, but said "certificate
  // reloaded" of a certificate the primary had refused or never reloaded.
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-reloaded-'));
  try {
    const path = join(dir, 'keys');
    writeFileSync(path, 'first-key\n', { mode: 0o600 });
    const keysFile = { path, keys: steps([{ key: 'first-key' }]) };
    const files = new ConfigurationFiles(new Map([[path, readFileSync(path)]]), {
      tlsFiles: undefined,
      keysFile,
      signatureSecretFile: undefined,
    });
    const forked = performance.now(); // the clock the primary forks by
    assert.equal(files.reloadedSince(forked), undefined, 'no SIGHUP yet');
    const { lines, log } = serving();
    const loaded = await files.reload(log);
    assert.equal(loaded?.what, 'the API keys');
    assert.deepEqual(lines, [], 'nothing said of a certificate over plain HTTP');
    const told = files.reloadedSince(forked);
    assert.deepEqual(told?.se === 'reload' && [...told.files.keys()], [path]);
    assert.equal(
      files.reloadedSince(performance.now() + 1_000),
      undefined,
      'forked after it: it read them at start',
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('two SIGHUPs in a row: the keys of the second are the ones kept, though the first took longer', async () => {
  // Each reload parses in slices: the first SIGHUP's (a large file) finished after the second's (the file
  // replaced by a small one), and its keys, loaded last, replaced the newer ones.
  const { lines, loaded, endpoint, log } = serving();
  const { keysFile, read, replace } = replacedKeysFile();
  const reload = reloader(
    { tlsFiles: undefined, keysFile, signatureSecretFile: undefined },
    endpoint,
    log,
    read,
  );
  const first = reload();
  replace();
  const second = reload();
  await Promise.all([first, second]);
  assert.deepEqual(loaded.at(-1), ['newer-key']);
  assert.deepEqual(loaded, [['newer-key']], 'the older keys are not loaded at all');
  assert.deepEqual(lines, ['API keys reloaded']);
});

test("the primary's two SIGHUPs in a row: the second's keys file is what workers are sent, though the first took longer", async () => {
  // The primary checks the keys file in slices too (it answers its workers meanwhile): the first
  // SIGHUP's check of a large file must not end by putting its bytes back over the newer file's.
  const { keysFile, read, replace } = replacedKeysFile();
  const files = new ConfigurationFiles(new Map([['/keys', Buffer.from('start')]]), {
    tlsFiles: undefined,
    keysFile,
    signatureSecretFile: undefined,
  });
  const { log } = serving();
  const first = files.reload(log, read);
  replace();
  const second = files.reload(log, read);
  const [older, newer] = await Promise.all([first, second]);
  assert.equal(older, undefined, 'the first loads nothing: a later SIGHUP read the file since');
  assert.equal(newer?.what, 'the API keys');
  const sent = files.all();
  assert.equal(sent.se === 'files' && sent.files.get('/keys')?.toString(), 'small');
});

/**
 * An endpoint whose first loadApiKeys waits for `install` (a large file's keys, built in slices), and a
 * keys file that `remove` makes unreadable.
 */
function firstInstallHeld() {
  const { lines, log } = serving();
  const loaded: string[][] = [];
  let install: (() => void) | undefined;
  const endpoint = {
    handler: {
      loadApiKeys: (keys: ApiKeySpec[]) => {
        const done = () => void loaded.push(keys.map((spec) => spec.key));
        if (install !== undefined) return Promise.resolve(done());
        return new Promise<void>((resolve) => {
          install = () => resolve(done());
        });
      },
    },
  } as unknown as EndpointServer;
  let there = true;
  const read = () => {
    if (!there) throw new Error('ENOENT: no such file or directory');
    return Buffer.from('keys\n');
  };
  const keysFile = { path: '/keys', keys: steps([{ key: 'a-key' }]) };
  const reload = reloader(
    { tlsFiles: undefined, keysFile, signatureSecretFile: undefined },
    endpoint,
    log,
    read,
  );
  const installing = async () => {
    const first = reload();
    while (install === undefined) await new Promise(setImmediate);
    return { first, install };
  };
  const remove = () => {
    there = false;
  };
  return { lines, loaded, reload, installing, remove };
}

test('a SIGHUP while the keys of the one before are still going in waits for them, then fails on its own', async () => {
  // The first SIGHUP's keys were being built (a large file, in slices) when a second found the file gone:
  // the log said only "reload failed; keeping the current ones", and the first's keys went in a moment
  // later, unannounced.
  const { lines, loaded, reload, installing, remove } = firstInstallHeld();
  const { first, install } = await installing();
  remove();
  const second = reload();
  install();
  await Promise.all([first, second]);
  assert.deepEqual(loaded, [['a-key']]);
  assert.deepEqual(lines, ['API keys reloaded', 'API keys reload failed; keeping the current ones']);
});

test('a SIGHUP while the keys of the one before are still going in loads its own after them', async () => {
  const { lines, loaded, reload, installing } = firstInstallHeld();
  const { first, install } = await installing();
  const second = reload();
  install();
  await Promise.all([first, second]);
  assert.deepEqual(loaded, [['a-key'], ['a-key']]);
  assert.deepEqual(lines, ['API keys reloaded', 'API keys reloaded']);
});

test('a burst of SIGHUPs: one reload at a time, each overtaken one stopped at its next slice, the last loaded', async () => {
  // Ten SIGHUPs in a row on a keys file of 100,000 keys took 3 s and 492 MB: every reload read and
  // checked the whole file before it found that a later one had begun. Ten on a million keys: ~4.7 GB.
  let reading = 0;
  let mostAtOnce = 0;
  let generation = 0;
  let steps = 0;
  const read = async () => {
    mostAtOnce = Math.max(mostAtOnce, ++reading);
    await new Promise(setImmediate);
    reading--;
    return Buffer.from(`generation-${++generation}`);
  };
  const parse = function* (key: string): Steps<ApiKeySpec[]> {
    for (let step = 0; step < 100; step++, steps++) {
      for (const until = performance.now() + 1; performance.now() < until; );
      yield;
    }
    return [{ key }];
  };
  const keysFile = { path: '/keys', keys: (readFile: ReadFile) => parse(readFile('/keys', '').toString()) };
  const loaded: string[] = [];
  const load = (keys: ApiKeySpec[]) => void loaded.push(...keys.map((spec) => spec.key));
  const { log } = serving();
  const reload = () => reloadKeysInSlices(keysFile, log, load, read);
  const burst = Array.from({ length: 10 }, reload);
  assert.deepEqual(await Promise.all(burst), [...Array(9).fill(false), true]);
  assert.equal(mostAtOnce, 1, 'one read at a time');
  assert.deepEqual(loaded, ['generation-1'], 'the nine overtaken before their turn read nothing');
  assert.equal(steps, 100);

  const first = reload();
  while (steps < 110) await new Promise(setImmediate);
  const second = reload();
  assert.deepEqual(await Promise.all([first, second]), [false, true]);
  assert.ok(steps < 230, `the first stopped at its next slice: ${steps - 100} steps in all`);
  assert.deepEqual(loaded, ['generation-1', 'generation-3']);
});

test('a keys file whose read never returns (a hung mount) fails its reload, and until it returns no SIGHUP begins another', async () => {
  // Reloads run one at a time: a read that never answered held every later SIGHUP behind it for good.
  // And each read of a hung mount holds one of the thread pool's four threads until the mount answers
  // (the store's writes use them too): four SIGHUPs filled the pool.
  const lines: string[] = [];
  const log = jsonLogger('info', (line) => {
    const { msg, reason } = JSON.parse(line);
    lines.push(`${msg}: ${reason}`);
  });
  const loaded: string[][] = [];
  const load = async (keys: ApiKeySpec[]) => void loaded.push(keys.map((spec) => spec.key));
  const keysFile = { path: '/hung/keys', keys: steps([{ key: 'next-key' }]) };
  let answer: (bytes: Buffer) => void = () => {};
  const hung = () =>
    new Promise<Buffer>((resolve) => {
      answer = resolve;
    });
  assert.equal(await reloadKeysInSlices(keysFile, log, load, hung, 50), false);
  let reads = 0;
  const counted = () => {
    reads++;
    return Buffer.from('');
  };
  assert.equal(await reloadKeysInSlices(keysFile, log, load, counted, 50), false);
  assert.equal(reads, 0, 'no second read begun');
  assert.match(lines[0] ?? '', /: \/hung\/keys was not read within 0\.05 s \(a hung mount\?\)$/);
  assert.match(lines[1] ?? '', /: a read of \/hung\/keys begun 0 s ago has not returned \(a hung mount\?\)$/);
  answer(Buffer.from(''));
  await new Promise(setImmediate);
  assert.equal(await reloadKeysInSlices(keysFile, log, load, counted, 50), true);
  assert.deepEqual([reads, loaded], [1, [['next-key']]]);
});
