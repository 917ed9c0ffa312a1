import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { chmodSync, mkdtempSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ApiKeySpec } from '../src/auth.ts';
import { parseConfig, parseKeySpec, parseKeysFile, UsageError } from '../src/config.ts';
import { apiKeySteps, readInput } from '../src/config-keys.ts';
import { createHandler, silentLogger } from '../src/index.ts';
import { reloadKeysInSlices } from '../src/keys-reload.ts';
import { jsonLogger } from '../src/log.ts';
import { KEYS_FILE_MAX_BYTES, readFileUpTo, readRegularFileAsync } from '../src/regular-file.ts';
import { readableByOthers } from '../src/secret-files.ts';
import { commandDir, configOf, startCli } from './cli-harness.ts';
import { segmentHeaders, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';
import { httpFlags } from './helpers-spawn.ts';
import { waitFor } from './helpers-wait.ts';

// API keys and signature secrets as the command takes them: --api-key specs, a keys file, the environment,
// a key given twice; secrets from a file or the environment, kept off the command line.

describe('the segment-endpoint command', () => {
  let dir: string;

  before(() => {
    ({ dir } = commandDir());
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('keys from --api-key with types, --api-keys-file and SEGMENT_API_KEYS', async () => {
    const keysFile = join(dir, 'keys.txt');
    writeFileSync(keysFile, '# customers\nfile-key\nfile-identify identify\n\n');
    const run = await startCli(
      [...httpFlags('flag-key:track'), '--api-keys-file', keysFile, '--out', join(dir, 'k')],
      { SEGMENT_API_KEYS: 'env-a, env-b' },
    );
    const send = async (key: string, body: unknown) =>
      (await fetch(run.url, { method: 'POST', headers: segmentHeaders(key), body: JSON.stringify(body) }))
        .status;
    const identify = { type: 'identify', userId: 'u1' };
    assert.equal(await send('flag-key', trackEvent()), 200);
    assert.equal(await send('flag-key', identify), 403);
    assert.equal(await send('file-key', identify), 200);
    assert.equal(await send('file-identify', identify), 200);
    assert.equal(await send('file-identify', trackEvent()), 403);
    assert.equal(await send('env-a', trackEvent()), 200);
    assert.equal(await send('env-b', identify), 200);
    assert.equal(await send('nobody', identify), 401);
    run.child.kill('SIGINT');
    assert.equal(await run.exit, 0);
  });

  test('a keys file or secret file every user of the host may read is said at start; one of mode 0600 is not', async () => {
    // Kept off the command line so that other users cannot read the keys (ps); written under the default
    // umask (0644), the file gave them away all the same, without a word.
    const open = join(dir, 'open-keys');
    const closed = join(dir, 'closed-secret');
    writeFileSync(open, 'open-key\n', { mode: 0o644 });
    chmodSync(open, 0o644); // whatever this process's umask
    writeFileSync(closed, 'a-secret\n', { mode: 0o600 });
    const run = await startCli([
      ...httpFlags(),
      ...['--api-keys-file', open, '--signature-secret-file', closed, '--out', join(dir, 'modes')],
    ]);
    await waitFor(run.stderr, /"msg":"listening"/);
    assert.match(
      run.stderr(),
      /--api-keys-file \S*open-keys is readable by every user of this host \(mode 0644\)/,
    );
    assert.doesNotMatch(run.stderr(), /closed-secret is readable/);
    assert.doesNotMatch(run.stderr(), /\bopen-key\b|a-secret/); // the secrets themselves, never
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
  });

  test('--signature-secret requires X-Signature; a key with its own secret= uses that', async () => {
    const keysFile = join(dir, 'signed-keys.txt');
    writeFileSync(
      keysFile,
      'own-key secret=own-secret\nrotating-key secret=old-rotated secret=new-rotated\n',
    );
    const run = await startCli([...httpFlags('k'), '--api-keys-file', keysFile], {
      SEGMENT_ENDPOINT_SIGNATURE_SECRET: 'shared',
      SEGMENT_ENDPOINT_OUT: join(dir, 'signed'),
    });
    const body = JSON.stringify(trackEvent());
    const send = async (key: string, secret?: string) =>
      (
        await fetch(run.url, {
          method: 'POST',
          headers: {
            ...segmentHeaders(key),
            ...(secret && { 'x-signature': createHmac('sha1', secret).update(body).digest('hex') }),
          },
          body,
        })
      ).status;
    assert.equal(await send('k', 'shared'), 200);
    assert.equal(await send('k'), 401);
    assert.equal(await send('k', 'wrong'), 401);
    assert.equal(await send('own-key', 'own-secret'), 200);
    assert.equal(await send('own-key', 'shared'), 401);
    // A key's secret being rotated: either of its two is accepted, and nothing else.
    assert.equal(await send('rotating-key', 'old-rotated'), 200);
    assert.equal(await send('rotating-key', 'new-rotated'), 200);
    assert.equal(await send('rotating-key', 'shared'), 401);
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
    assert.doesNotMatch(run.stderr(), /shared|own-secret|-rotated/);
  });

  test('--signature-secret-file: the secret read from the file is enforced end to end', async () => {
    const secretFile = join(dir, 'signature-secret');
    writeFileSync(secretFile, 'from-file\n', { mode: 0o600 });
    const args = [...httpFlags(), '--signature-secret-file', secretFile];
    const run = await startCli([...args, '--signature-legacy-batch', '--out', join(dir, 'secret-file')], {
      SEGMENT_ENDPOINT_API_KEYS: 'k',
    });
    const send = async (body: string, headers: Record<string, string>) =>
      (await fetch(run.url, { method: 'POST', headers: { ...segmentHeaders('k'), ...headers }, body }))
        .status;
    const sign = (secret: string, text: string) => createHmac('sha1', secret).update(text).digest('hex');
    const one = JSON.stringify(trackEvent());
    assert.equal(await send(one, { 'x-signature': sign('from-file', one) }), 200);
    assert.equal(await send(one, { 'x-signature': sign('from-file\n', one) }), 401);
    assert.equal(await send(one, {}), 401);
    // --signature-legacy-batch: Segment's legacy signing of a batch, by its first event, is accepted.
    const batch = [trackEvent(), trackEvent()];
    assert.equal(
      await send(JSON.stringify(batch), { 'x-signature': sign('from-file', JSON.stringify(batch[0])) }),
      200,
    );
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
    assert.doesNotMatch(run.stderr(), /from-file/);
  });
});

describe('key specs', () => {
  test('KEY and KEY:type,type', () => {
    assert.deepEqual(parseKeySpec('abc', '--api-key'), { key: 'abc' });
    assert.deepEqual(parseKeySpec('abc:track,Identify', '--api-key'), {
      key: 'abc',
      types: ['track', 'identify'],
    });
    assert.throws(() => parseKeySpec(':track', '--api-key'), UsageError);
    assert.throws(() => parseKeySpec('abc:buy', '--api-key'), UsageError);
  });

  test('a keys file: one KEY [types] per line, comments and blanks skipped, errors name the line', () => {
    assert.deepEqual(parseKeysFile('a\n# c\n\nb track,page # tail\r\n'), [
      { key: 'a' },
      { key: 'b', types: ['track', 'page'] },
    ]);
    assert.throws(() => parseKeysFile('a\nb track extra\n'), /line 2/);
    assert.deepEqual(parseKeysFile('k1 secret=s3cr3t\nk2 track secret=x\n'), [
      { key: 'k1', signatureSecret: 's3cr3t' },
      { key: 'k2', types: ['track'], signatureSecret: 'x' },
    ]);
    assert.throws(() => parseKeysFile('k secret=\n'), /line 1/);
    assert.throws(() => parseKeysFile('a:b\n'), /line 1/);
  });

  test("a key's secret being rotated: secret= repeated gives it both, up to 4", () => {
    assert.deepEqual(parseKeysFile('k secret=old secret=new\n'), [
      { key: 'k', signatureSecret: ['old', 'new'] },
    ]);
    const four = 'k secret=a secret=b secret=c secret=d';
    assert.deepEqual(parseKeysFile(four), [{ key: 'k', signatureSecret: ['a', 'b', 'c', 'd'] }]);
    assert.throws(() => parseKeysFile(`ok\n${four} secret=e\n`), /line 2: more than 4 secret=/);
    assert.throws(() => parseKeysFile('k secret=a secret=\n'), /line 1/);
    // The same key twice, its secrets in another order, is one key; with other secrets, refused.
    const twice = (second: string) => () =>
      createHandler({
        apiKeys: parseKeysFile(`k secret=a secret=b\n${second}`),
        log: silentLogger,
        handlers: {},
      });
    assert.doesNotThrow(twice('k secret=b secret=a secret=b\n'));
    assert.throws(twice('k secret=a\n'), /other types, secret or rate/);
    assert.throws(twice('k secret=a secret=c\n'), /other types, secret or rate/);
  });

  test('a token taken for types is not named back (a secret in the wrong place), unless a misspelt type', () => {
    const cases: Array<[() => unknown, string]> = [
      [() => parseKeysFile('k1 secret:S3CR3TVALUE\n'), 's3cr3tvalue'],
      [() => parseKeysFile('track,identify MYAPIKEY123\n'), 'myapikey123'],
      [() => parseKeySpec('MYKEY:MyPassw0rd', '--api-key'), 'mypassw0rd'],
    ];
    for (const [parse, secret] of cases) {
      assert.throws(parse, (err: Error) => {
        assert.ok(err instanceof UsageError);
        assert.match(err.message, /not an event type/);
        assert.ok(!err.message.toLowerCase().includes(secret), err.message);
        return true;
      });
    }
    assert.throws(() => parseKeysFile('k1 identfy\n'), {
      message:
        /^--api-keys-file line 1: "identfy" is not an event type: did you mean identify\? \(identify, track/,
    });
  });

  test('a "#" starts a comment only where a token would start: a secret may hold one', () => {
    assert.deepEqual(parseKeysFile('k1 secret=ab#cd\nk2 #track\n#k3\n'), [
      { key: 'k1', signatureSecret: 'ab#cd' },
      { key: 'k2' },
    ]);
  });

  test('a key given twice over is refused, wherever it was given: one would silently lose its limits', () => {
    const keys = join(mkdtempSync(join(tmpdir(), 'segment-endpoint-keys-')), 'keys');
    writeFileSync(keys, 'k1 track secret=S3cr3t\n');
    const refused = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      assert.throws(
        () => configOf(args, env),
        (err: Error) => {
          assert.ok(err instanceof UsageError);
          assert.match(err.message, /given twice/);
          assert.doesNotMatch(err.message, /k1|S3cr3t/, 'the key and its secret are not repeated');
          return true;
        },
      );
    refused(['--api-key', 'k1:track', '--api-key', 'k1']);
    refused(['--api-keys-file', keys], { SEGMENT_ENDPOINT_API_KEYS: 'k1' });
    refused(['--api-keys-file', keys, '--api-key', 'k1']);
    // The same key, saying the same, twice (both variables set during a migration to the new name).
    const both = { SEGMENT_ENDPOINT_API_KEYS: 'k1,k2', SEGMENT_API_KEYS: 'k2,k1' };
    assert.deepEqual([...(configOf([], both).options.apiKeys ?? [])], [{ key: 'k1' }, { key: 'k2' }]);
    rmSync(dirname(keys), { recursive: true, force: true });
  });
});

// Flags are visible to every user of the host in `ps` (/proc/PID/cmdline); files and environment
// variables are not.
describe('secrets kept off the command line', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-secrets-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };

  /** A secret file's text, or --signature-secret's value, and the secrets read of it. */
  const SECRET_TEXTS: Array<[string, string | string[]]> = [
    ['s3cret', 's3cret'],
    // What editors on Windows save: the mark is how the file is encoded, not a character of it.
    ['\ufeffs3cret\r\n', 's3cret'],
    ['s3cret\n', 's3cret'],
    ['s3cret\r\n', 's3cret'],
    ['s3cret\r', 's3cret'],
    ['s3cret\n\n', 's3cret'],
    [' s3 cret \n', ' s3 cret '],
    // A secret being rotated: the old and the new, each accepted.
    ['old\nnew\n', ['old', 'new']],
    ['\ufeffold\r\n\r\nnew', ['old', 'new']],
    ['a\nb\nc\nd\n', ['a', 'b', 'c', 'd']],
    // A line of white space is blank, not a secret anyone could sign with; a mark that begins a line
    // of a file put together from two (`cat old new`) is not part of its secret; a # is.
    ['real\n \t\n', 'real'],
    ['old\n\ufeffnew\n', ['old', 'new']],
    ['#starts-with-hash\n', '#starts-with-hash'],
  ];

  test('--signature-secret-file: a secret a line; the newline, empty lines and a leading byte-order mark are not part of one', () => {
    SECRET_TEXTS.forEach(([text, secret], i) => {
      const path = file(`secret-${i}`, text);
      const config = configOf(['--api-key', 'k', '--signature-secret-file', path]);
      assert.deepEqual(config.options.signatureSecret, secret, JSON.stringify(text));
    });
  });

  test("a secret file's mode is judged of the file read, not of what its path names after", () => {
    // Read, then replaced (a secrets agent renames a new file in): the warning is of what was read.
    const open = file('open-then-closed', 'k1\n');
    chmodSync(open, 0o644);
    const closed = file('closed-then-open', 'k2\n');
    const modes = new Map<string, number>();
    for (const path of [open, closed]) modes.set(path, readInput(path, '--api-keys-file').mode);
    renameSync(file('closed-replacement', 'k3\n'), open);
    const opened = file('open-replacement', 'k4\n');
    chmodSync(opened, 0o644);
    renameSync(opened, closed);
    const warnings = readableByOthers(
      [
        ['--api-keys-file', open],
        ['--signature-secret-file', closed],
        ['--signature-secret-file', join(dir, 'sent-by-the-primary')],
      ],
      modes,
    );
    assert.deepEqual(warnings, [
      `--api-keys-file ${open} is readable by every user of this host (mode 0644): it holds secrets; chmod 600 it`,
    ]);
  });

  test('--signature-secret and its variable are read as the file is: a line break is not part of a secret', () => {
    // A Kubernetes secret made with `--from-file`, or a value out of `$(cat file)` of a file with CRLF,
    // puts a line break in the variable: kept, no signature Segment makes could match, and every event
    // was refused 401, which Segment does not retry.
    for (const [value, secret] of SECRET_TEXTS) {
      const flag = configOf(['--api-key', 'k', '--signature-secret', value]);
      assert.deepEqual(flag.options.signatureSecret, secret, JSON.stringify(value));
      const variable = configOf(['--api-key', 'k'], { SEGMENT_ENDPOINT_SIGNATURE_SECRET: value });
      assert.deepEqual(variable.options.signatureSecret, secret, JSON.stringify(value));
    }
    assert.throws(() => configOf(['--api-key', 'k', '--signature-secret', '\n \n']), {
      message: /^--signature-secret holds no secret/,
    });
    assert.throws(
      () => configOf(['--api-key', 'k'], { SEGMENT_ENDPOINT_SIGNATURE_SECRET: 'a\nb\nc\nd\ne' }),
      {
        message: /^SEGMENT_ENDPOINT_SIGNATURE_SECRET holds 5 secrets, more than 4/,
      },
    );
  });

  test('SEGMENT_ENDPOINT_SIGNATURE_SECRET_FILE names the file too', () => {
    const path = file('env-secret', 'from-env-file\n');
    const config = configOf(['--api-key', 'k'], { SEGMENT_ENDPOINT_SIGNATURE_SECRET_FILE: path });
    assert.equal(config.options.signatureSecret, 'from-env-file');
  });

  test('an empty or unreadable secret file, or a secret given twice, is a usage error', () => {
    const both = file('both', 'x\n');
    const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
      [['--signature-secret-file', file('empty', '')], {}, /holds no secret/],
      [['--signature-secret-file', file('newline', '\n')], {}, /holds no secret/],
      [['--signature-secret-file', file('crlf', '\r\n\r\n')], {}, /holds no secret/],
      [['--signature-secret-file', file('blank', ' \n\t\n')], {}, /holds no secret/],
      [['--signature-secret-file', file('five', 'a\nb\nc\nd\ne\n')], {}, /holds 5 secrets, more than 4/],
      [['--signature-secret-file', join(dir, 'missing')], {}, /cannot read/],
      [['--signature-secret-file', both, '--signature-secret', 'y'], {}, /one of/],
      [['--signature-secret-file', both], { SEGMENT_ENDPOINT_SIGNATURE_SECRET: 'y' }, /one of/],
    ];
    for (const [args, env, message] of cases) {
      assert.throws(() => parseConfig(['--http', '--api-key', 'k', ...args], env), UsageError);
      assert.throws(() => parseConfig(['--http', '--api-key', 'k', ...args], env), message);
    }
  });

  test('a keys file of 200,000 keys is read, at start and on SIGHUP: not one argument of a call a key', async () => {
    // Its keys went into a call as its arguments, past V8's limit: "Maximum call stack size exceeded".
    const path = join(dir, 'many-keys.txt');
    writeFileSync(path, Array.from({ length: 200_000 }, (_, i) => `key-${i}`).join('\n'));
    const config = configOf(['--api-keys-file', path]);
    assert.equal((config.options.apiKeys as ApiKeySpec[]).length, 200_000);
    const handler = createHandler({ apiKeys: ['first'], log: silentLogger, handlers: { track() {} } });
    const reloaded = await reloadKeysInSlices(config.keysFile, silentLogger, (keys) =>
      handler.loadApiKeys(keys),
    );
    assert.equal(reloaded, true);
    const status = async (key: string) =>
      (await inject(handler, { body: trackEvent(), headers: segmentHeaders(key) })).status;
    assert.deepEqual([await status('key-199999'), await status('first')], [200, 401]);
  });

  test("a key's secret rotated through SIGHUP, in the README's three steps: no step refuses what is signed under the secret in use", async () => {
    const path = file('rotating-keys.txt', 'k secret=old-one\n');
    const config = configOf(['--api-keys-file', path]);
    const handler = createHandler({
      apiKeys: config.options.apiKeys,
      log: silentLogger,
      handlers: { track() {} },
    });
    const body = JSON.stringify(trackEvent());
    const status = async (secret: string) => {
      const signature = createHmac('sha1', secret).update(body).digest('hex');
      return (await inject(handler, { body, headers: { ...segmentHeaders('k'), 'x-signature': signature } }))
        .status;
    };
    const reload = async (text: string) => {
      writeFileSync(path, text, { mode: 0o600 });
      assert.equal(
        await reloadKeysInSlices(config.keysFile, silentLogger, (keys) => handler.loadApiKeys(keys)),
        true,
      );
    };
    assert.deepEqual([await status('old-one'), await status('new-one')], [200, 401]);
    await reload('k secret=old-one secret=new-one\n'); // 1. the new beside the old
    assert.deepEqual([await status('old-one'), await status('new-one')], [200, 200]);
    await reload('k secret=new-one\n'); // 3. once Segment signs under the new, the old taken out
    assert.deepEqual([await status('old-one'), await status('new-one')], [401, 200]);
  });

  test('on SIGHUP the keys file is read off the event loop; one that became a named pipe is refused, the keys staying', async () => {
    // Read in one call, a keys file of a million keys (~40 MB) held every request for ~140 ms, and for as
    // long as a slow disk takes. Read off the loop, the loop turns while it is read.
    const large = join(dir, 'large.bin');
    writeFileSync(large, Buffer.alloc(8 * 1024 * 1024, 0x61));
    let turns = 0;
    let reading = true;
    const turn = () => {
      if (!reading) return;
      turns++;
      setImmediate(turn);
    };
    setImmediate(turn);
    const { bytes } = await readRegularFileAsync(large, KEYS_FILE_MAX_BYTES);
    reading = false;
    assert.equal(bytes.length, 8 * 1024 * 1024);
    assert.ok(turns >= 4, `the loop turned ${turns} times while 8 MiB were read`);

    // A keys file that became a named pipe with no writer: a read would wait for one for good.
    const path = join(dir, 'piped-keys.txt');
    writeFileSync(path, 'piped-key\n');
    const config = configOf(['--api-keys-file', path]);
    rmSync(path);
    execFileSync('mkfifo', [path]);
    const lines: string[] = [];
    const log = jsonLogger('info', (line) => lines.push(line));
    const loaded: ApiKeySpec[][] = [];
    const reloaded = await reloadKeysInSlices(config.keysFile, log, (keys) => void loaded.push(keys));
    assert.equal(reloaded, false);
    assert.deepEqual(loaded, []);
    assert.match(lines.join(''), /"reason":"not a regular file[^\n]*API keys reload failed/);
  });

  test('a keys file line that is not UTF-8, or longer than any key could be, is refused by its line', () => {
    // Not UTF-8: "k1" and the byte e9 was read as "k1\ufffd", which any sender's bad byte matched. Too
    // long: a line was checked in one step (a 200 MB line held the loop 2.5 s), and no request could
    // carry such a key in its Authorization header.
    const cases: Array<[Buffer, RegExp]> = [
      [Buffer.from([0x6b, 0x30, 0x0a, 0x6b, 0x31, 0xe9, 0x0a]), /--api-keys-file line 2: not UTF-8 text/],
      [Buffer.from(`k0\n${'k'.repeat(8 * 1024 + 1)}\n`), /--api-keys-file line 2: longer than 8192 bytes/],
      [Buffer.alloc(4_000_001, '\n'), /--api-keys-file: more than 4000000 lines/],
    ];
    for (const [bytes, message] of cases) {
      const path = join(dir, 'bad-bytes-keys.txt');
      writeFileSync(path, bytes, { mode: 0o600 });
      assert.throws(() => configOf(['--api-keys-file', path]), message);
    }
    // The longest line taken, whether it ends in LF or in CRLF (a file saved on Windows): "\r" is its end.
    for (const end of ['\n', '\r\n']) {
      writeFileSync(join(dir, 'long-keys.txt'), `${'k'.repeat(8 * 1024)}${end}k2${end}`, { mode: 0o600 });
      const { apiKeys } = configOf(['--api-keys-file', join(dir, 'long-keys.txt')]).options;
      assert.equal((apiKeys as ApiKeySpec[]).length, 2, JSON.stringify(end));
    }
  });

  test('files named at start are read up to the same bounds: a file of /proc that never ends is refused', () => {
    // A keys file at /proc/self/pagemap never let the process listen: it grew ~150 MB a second instead.
    assert.throws(
      () => configOf(['--api-key', 'k', '--signature-secret-file', '/proc/self/pagemap']),
      /--signature-secret-file: cannot read \/proc\/self\/pagemap \(larger than 1 MiB/,
    );
  });

  test('the line that is not UTF-8 is looked for a step at a time, as the rest of a reload', () => {
    // Found in one step, a bad byte at the end of 12 million lines held every request for 1.7 s.
    const path = join(dir, 'bad-last-keys.txt');
    const lines = Array.from({ length: 100_000 }, (_, i) => `key-${i}\n`).join('');
    writeFileSync(path, Buffer.concat([Buffer.from(lines), Buffer.from([0x6b, 0xe9])]), { mode: 0o600 });
    const steps = apiKeySteps(undefined, path, {});
    let yields = 0;
    assert.throws(() => {
      while (!steps.next().done) yields++;
    }, /line 100001: not UTF-8 text/);
    assert.ok(yields >= 100, `${yields} turns given back while looking`);
  });

  test('a file read again on SIGHUP is read up to a bound, whatever size it says it has', async () => {
    // A keys file symlinked to /proc/self/pagemap (regular, 0 bytes long, and it never ends) grew the
    // process by ~200 MB a second, without a word, until the machine ran out.
    const sparse = join(dir, 'sparse-keys.txt');
    writeFileSync(sparse, '');
    truncateSync(sparse, 2 ** 20 + 1);
    const bound = /larger than 1 MiB/;
    await Promise.all([
      assert.rejects(readRegularFileAsync('/proc/self/pagemap', 2 ** 20), bound),
      assert.rejects(readRegularFileAsync(sparse, 2 ** 20), bound),
      assert.throws(() => readFileUpTo('/proc/self/pagemap', 2 ** 20), bound),
      assert.throws(() => readFileUpTo(sparse, 2 ** 20), bound),
      readRegularFileAsync(sparse, 2 ** 21).then(({ bytes }) => assert.equal(bytes.length, 2 ** 20 + 1)),
    ]);
  });

  test('a keys file named by its variable is said by it when a reload finds it readable by every user', async () => {
    const path = join(dir, 'env-named-keys.txt');
    writeFileSync(path, 'env-file-key\n', { mode: 0o600 });
    const config = configOf([], { SEGMENT_ENDPOINT_API_KEYS_FILE: path });
    chmodSync(path, 0o644);
    const lines: string[] = [];
    const log = jsonLogger('info', (line) => lines.push(line));
    assert.equal(await reloadKeysInSlices(config.keysFile, log, () => {}), true);
    assert.match(lines.join(''), /SEGMENT_ENDPOINT_API_KEYS_FILE \S+ is readable by every user[^\n]*0644/);
    assert.doesNotMatch(lines.join(''), /env-file-key/);
  });

  test('the keys the command line read are frozen once checked, since the endpoint takes them without a second check', () => {
    // A million keys checked twice (the command line's parse, then the authenticator's) took ~0.65 s more
    // at start and at each SIGHUP. What is not checked again must not be able to change.
    const path = join(dir, 'frozen-keys.txt');
    writeFileSync(path, 'file-key track,page\n');
    const specs = configOf(['--api-keys-file', path, '--api-key', 'flag-key:identify']).options
      .apiKeys as ApiKeySpec[];
    assert.deepEqual(
      specs.map((spec) => spec.key),
      ['flag-key', 'file-key'],
    );
    for (const spec of specs) {
      assert.ok(Object.isFrozen(spec) && Object.isFrozen(spec.types));
      assert.throws(() => {
        (spec as { key: string }).key = 'a:b';
      }, TypeError);
    }
    // A spec that only looks like one of theirs is checked: the handler refuses a key holding ":".
    const copy = { ...specs[0], key: 'a:b' };
    assert.throws(
      () => createHandler({ apiKeys: [copy], log: silentLogger, handlers: {} }),
      /options\.apiKeys\[0\]/,
    );
  });

  test('API keys from SEGMENT_ENDPOINT_API_KEYS, and still from SEGMENT_API_KEYS', () => {
    const keys = (env: NodeJS.ProcessEnv) =>
      (configOf([], env).options.apiKeys as ApiKeySpec[]).map((spec) => spec.key);
    assert.deepEqual(keys({ SEGMENT_ENDPOINT_API_KEYS: 'a, b,' }), ['a', 'b']);
    assert.deepEqual(keys({ SEGMENT_API_KEYS: 'c' }), ['c']);
    assert.deepEqual(keys({ SEGMENT_ENDPOINT_API_KEYS: 'a', SEGMENT_API_KEYS: 'c' }), ['a', 'c']);
    assert.throws(
      () => parseConfig(['--http'], { SEGMENT_ENDPOINT_API_KEYS: ' , ' }),
      /SEGMENT_ENDPOINT_API_KEYS holds no key/,
    );
  });

  test('the usage text names the file and environment variable of each secret', async () => {
    const { usage } = await import('../src/config.ts');
    for (const name of [
      '--signature-secret-file',
      'SEGMENT_ENDPOINT_SIGNATURE_SECRET_FILE',
      'SEGMENT_ENDPOINT_API_KEYS',
      '--api-keys-file',
    ]) {
      assert.ok(usage().includes(name), name);
    }
  });
});
