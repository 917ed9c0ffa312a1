import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { UsageError } from '../src/config.ts';
import { silentLogger } from '../src/log.ts';
import { resolveHandlerOptions } from '../src/options.ts';
import { BUILT, commandDir, configOf, type Finished, runCli, startCli, storedEvents } from './cli-harness.ts';
import { segmentHeaders, trackEvent } from './helpers.ts';
import { makeCert, makeDatedCert, makeExpiredCert } from './helpers-cert.ts';
import { CLI, httpFlags, ROOT, spawnClean } from './helpers-spawn.ts';
import { waitFor } from './helpers-wait.ts';

// The command line as the command reads it: --help and --version, bad usage and refused options (exit 1
// with one line and a hint), flags from the environment, a flag given twice, and numbers out of bounds.

describe('the segment-endpoint command', () => {
  let dir: string;
  let certFile: string;

  before(() => {
    ({ dir, certFile } = commandDir());
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('--help prints usage and exits 0; --version prints the version', async () => {
    const help = await runCli(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: segment-endpoint/);
    assert.match(help.stdout, /--api-key/);
    const version = await runCli(['--version']);
    assert.equal(version.code, 0);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    assert.equal(version.stdout.trim(), pkg.version);
    // `node dist/cli`, the file named without its .js, as node's own resolution allows: it crashed with a
    // stack trace, the check that the file was run as a script looking for dist/cli itself.
    const unsuffixed = await runCli(['--version'], {}, [join(ROOT, 'dist', 'cli')]);
    assert.equal(unsuffixed.code, 0, unsuffixed.stderr);
    assert.equal(unsuffixed.stdout.trim(), pkg.version);
  });

  test('bad usage exits 1 with one line and a hint', async () => {
    const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
      [['--bogus'], {}, /^segment-endpoint: Unknown option '--bogus'\nTry /],
      [
        ['--max-body-byte', '5'],
        {},
        /^segment-endpoint: Unknown option '--max-body-byte': did you mean --max-body-bytes\?\n/,
      ],
      [['--http', '--port', '0'], {}, /no API key/],
      [['--api-key', 'k'], {}, /--cert and --key are required/],
      [['--api-key', 'k', '--cert', '/nonexistent.pem', '--key', '/nonexistent.key'], {}, /cannot read/],
      [['--http', '--api-key', 'k', '--port', 'eighty'], {}, /--port must be a whole number/],
      [['--http', '--api-key', 'k:purchase'], {}, /--api-key: one of the types is not an event type/],
      [['--http', '--api-key', 'k', '--log-level', 'loud'], {}, /--log-level/],
      [
        ['--http', '--api-key', 'k', '--shutdown-timeout', 'soon'],
        {},
        /--shutdown-timeout must be a number of seconds/,
      ],
      [['--http', '--api-key', 'k', '--max-in-flight', '-1'], {}, /--max-in-flight/],
      [['--http', '--api-key', 'k', '--handlers', '/nonexistent.mjs'], {}, /--handlers: cannot load/],
      [['--http', '--host=', '--api-key', 'k', '--port', '0'], {}, /--host is given but empty/],
      [
        ['--http', '--api-key', 'k', '--port', '-1'],
        {},
        /^segment-endpoint: --port: a value that starts with "-" is given as --port=VALUE\nTry /,
      ],
      [
        ['--http', '--api-key', 'k', '--port', '0'],
        { SEGMENT_ENDPOINT_API_KEYS: '' },
        /^[^\n]*SEGMENT_ENDPOINT_API_KEYS is set but empty/,
      ],
      [
        ['--http', '--api-key', 'k', '--port', '0'],
        { SEGMENT_API_KEYS: '' },
        /SEGMENT_API_KEYS is set but empty/,
      ],
      // Spaces and commas are a lost value too, not "unset" (beside another key, it started silently).
      [
        ['--http', '--api-key', 'k', '--port', '0'],
        { SEGMENT_ENDPOINT_API_KEYS: ' , ' },
        /^segment-endpoint: SEGMENT_ENDPOINT_API_KEYS holds no key \(only spaces and commas\)/,
      ],
      [
        ['--http', '--port', '0'],
        { SEGMENT_API_KEYS: ' ' },
        /^segment-endpoint: SEGMENT_API_KEYS holds no key/,
      ],
    ];
    // The command as shipped (dist/, one bundled file): each start ~5 times quicker than the sources
    // through tsx, 17 of them; the messages are the same code's (the unit tests of configOf read them too).
    for (const [args, env, message] of cases) {
      const res = await runCli(args, env, BUILT);
      assert.equal(res.code, 1, args.join(' '));
      assert.match(res.stderr, message, args.join(' '));
      assert.match(res.stderr, /^segment-endpoint: /);
    }
  });

  test('an argument that is not a flag is refused without being shown: it may be the rest of a secret', async () => {
    // `--api-key KEY1 KEY2`: the second part of an unquoted secret holding a space. A failed start's
    // stderr stays in the journal.
    const cases: Array<[string[], RegExp]> = [
      [
        ['--http', '--api-key', 'Key-ONE-111', 'Key-TWO-222', '--port', '0'],
        /^segment-endpoint: argument 4 \(not shown[^\n]*after --api-key and its value[^\n]*: this command takes none\n/,
      ],
      [
        ['test', 'https://127.0.0.1:1/', '--api-key', 'K', 'Key-TWO-222'],
        /one URL only: argument 5 \(not shown/,
      ],
      [
        ['load', 'https://127.0.0.1:1/', '--api-key', 'K', 'Key-TWO-222'],
        /one URL only: argument 5 \(not shown/,
      ],
      [['read', '--out', '/tmp', 'Key-TWO-222'], /argument 4 \(not shown[^\n]*: read takes none/],
    ];
    const runs = await Promise.all(cases.map(([args]) => runCli(args, {}, BUILT)));
    for (const [i, [, message]] of cases.entries()) {
      const res = runs[i] as Finished;
      assert.equal(res.code, 1, res.stderr);
      assert.match(res.stderr, message);
      assert.doesNotMatch(res.stderr + res.stdout, /Key-TWO-222/);
    }
  });

  test("a port in use, or a host that is not this machine's: said of --port or --host, in one line", async () => {
    const taken = createNetServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    // The store is opened before the port is taken: its own directory, not ./data in the checkout.
    const out = mkdtempSync(join(tmpdir(), 'segment-endpoint-port-'));
    try {
      const cases: Array<[string[], RegExp]> = [
        [
          ['--host', '127.0.0.1', '--port', String(port)],
          new RegExp(`^--port ${port}: in use on 127\\.0\\.0\\.1 by another process \\(EADDRINUSE\\)$`),
        ],
        [
          ['--host', '192.0.2.1', '--port', '0'],
          /^--host 192\.0\.2\.1: not an address of this machine \(EADDRNOTAVAIL\)$/,
        ],
      ];
      for (const [args, message] of cases) {
        const res = await runCli(['--http', '--api-key', 'k', '--out', out, ...args]);
        assert.equal(res.code, 1, res.stderr);
        const [line, hint] = res.stderr.split('\n');
        assert.match(line?.replace(/^segment-endpoint: /, '') ?? '', message);
        assert.equal(hint, "Try 'segment-endpoint --help'.");
      }
    } finally {
      taken.close();
      rmSync(out, { recursive: true, force: true });
    }
  });

  test('options the server refuses also exit 1, before the store is touched', async () => {
    const out = join(dir, 'refused-store');
    const refused = [
      ['--http', '--path', 'no-slash'],
      ['--cert', certFile, '--key', certFile],
    ];
    for (const args of refused) {
      const res = await runCli([...args, '--api-key', 'k', '--port', '0', '--out', out]);
      assert.equal(res.code, 1, args.join(' '));
      assert.match(res.stderr, /^segment-endpoint: /, args.join(' '));
      assert.equal(existsSync(out), false, `${args.join(' ')}: --out was made`);
    }
  });

  test("a certificate or key TLS cannot use is said of its flag, not in OpenSSL's words", async () => {
    const other = makeCert(dir, 'other');
    const keyFile = join(dir, 'key.pem');
    const expired = makeExpiredCert(mkdtempSync(join(dir, 'expired-')));
    const early = makeDatedCert(
      mkdtempSync(join(dir, 'early-')),
      'early',
      '20990101000000Z',
      '20990201000000Z',
    );
    const weak = makeCert(dir, 'weak', ['rsa:1024']);
    // The certificate as DER (what `openssl x509 -outform der` writes), and a chain whose second
    // certificate was cut short (a renewal written halfway).
    const der = join(dir, 'cert.der');
    writeFileSync(der, new X509Certificate(readFileSync(certFile)).raw);
    const cut = join(dir, 'chain-cut.pem');
    const pem = readFileSync(other.cert, 'utf8');
    writeFileSync(cut, readFileSync(certFile, 'utf8') + pem.slice(0, pem.length / 2));
    const cases: Array<[string, string, RegExp]> = [
      [certFile, other.key, /^--key .*other\.key is not the key of the certificate in --cert .*cert\.pem$/],
      [keyFile, certFile, /^--cert .*key\.pem holds no PEM certificate$/],
      [certFile, certFile, /^--key .*cert\.pem holds no PEM private key \(without a passphrase\)$/],
      // Served, it fails every sender's handshake: refused rather than started with.
      [expired.cert, expired.key, /^--cert .*expired\.crt expired on Feb {1,2}1 00:00:00 2020 GMT$/],
      // A clock behind, or a certificate dated ahead: every handshake fails until the date.
      [
        early.cert,
        early.key,
        /^--cert .*early\.crt is not valid until Jan {1,2}1 00:00:00 2099 GMT \(check this host's clock\)$/,
      ],
      // Many TLS clients refuse an RSA key under 2048 bits (OpenSSL itself one under 1024, in its words).
      [weak.cert, weak.key, /^--key .*weak\.key is an RSA key of 1024 bits: give one of 2048 bits or more$/],
      [der, keyFile, /^--cert .*cert\.der holds no PEM certificate$/],
      [cut, keyFile, /^--cert .*chain-cut\.pem: its certificate 2 is cut short or unreadable$/],
    ];
    const runs = await Promise.all(
      cases.map(([cert, key]) =>
        runCli(['--cert', cert, '--key', key, '--api-key', 'k', '--port', '0'], {}, BUILT),
      ),
    );
    for (const [i, [, , message]] of cases.entries()) {
      const res = runs[i] as Finished;
      assert.equal(res.code, 1, res.stderr);
      const [line, hint] = res.stderr.split('\n');
      assert.match(line?.replace(/^segment-endpoint: /, '') ?? '', message);
      assert.equal(hint, "Try 'segment-endpoint --help'.");
      assert.doesNotMatch(res.stderr, /routines/);
    }
  });

  test('refuses to start when --out is not writable: exit 1, one line naming --out and the cause', async () => {
    const file = join(dir, 'a-regular-file');
    writeFileSync(file, '');
    // Paths no process can write to, root included (tests often run as root, for whom mode bits are no
    // bar): below a regular file, and sysfs, which takes no new files (EROFS where mounted read-only).
    const cases: Array<[string, RegExp]> = [[join(file, 'store'), /ENOTDIR/]];
    if (existsSync('/sys/kernel')) cases.push(['/sys', /EACCES|EPERM|EROFS/]);
    // procfs answers ENOENT to a new directory: Node's recursive mkdir retried it for ever.
    if (existsSync('/proc/self')) cases.push(['/proc/segment-endpoint-store/day', /ENOENT/]);
    for (const [out, cause] of cases) {
      const run = spawnClean(process.execPath, [
        ...CLI,
        '--http',
        '--port',
        '0',
        '--api-key',
        'k',
        '--out',
        out,
      ]);
      const started = waitFor(run.stdout, /listening on/).then(() => {
        run.child.kill('SIGKILL');
        return 'started';
      });
      const outcome = await Promise.race([started, run.exit]);
      assert.equal(outcome, 1, `--out ${out}: ${run.stdout()}${run.stderr()}`);
      const lines = run
        .stderr()
        .split('\n')
        .filter((l) => l !== '');
      assert.equal(lines.length, 1, run.stderr());
      assert.match(lines[0] ?? '', /^segment-endpoint: --out /);
      assert.ok(lines[0]?.includes(out), run.stderr());
      assert.match(lines[0] ?? '', cause);
    }
  });

  test('--out through a symbolic link and then ..: the store is where the kernel takes the path', async () => {
    // `base/link/..` is the directory above the link's target to the kernel, and `base` to a path taken
    // as text: the store made its directory in one and looked for its lock in the other (ENOENT).
    const deep = join(dir, 'real', 'deep');
    mkdirSync(deep, { recursive: true });
    mkdirSync(join(dir, 'base'));
    symlinkSync(deep, join(dir, 'base', 'link'));
    const run = await startCli([
      ...httpFlags(),
      '--api-key',
      'k',
      '--out',
      `${dir}/base/link/../store`, // not join(), which takes the .. as text
    ]);
    const sent = await fetch(run.url, {
      method: 'POST',
      headers: segmentHeaders('k'),
      body: JSON.stringify(trackEvent()),
    });
    assert.equal(sent.status, 200);
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0, run.stderr());
    assert.equal(storedEvents(join(dir, 'real', 'store')).length, 1, run.stderr());
    assert.equal(existsSync(join(dir, 'base', 'store')), false);
    assert.ok(run.stderr().includes(`events stored in ${join(dir, 'real', 'store')}`), run.stderr());
  });

  test('flags fall back to environment variables', async () => {
    const out = join(dir, 'env-out');
    const run = await startCli([], {
      SEGMENT_ENDPOINT_HTTP: '1',
      SEGMENT_ENDPOINT_HOST: '127.0.0.1',
      SEGMENT_ENDPOINT_PORT: '0',
      SEGMENT_ENDPOINT_PATH: '/segment',
      SEGMENT_ENDPOINT_OUT: out,
      SEGMENT_ENDPOINT_MAX_BODY_BYTES: '300',
      SEGMENT_API_KEYS: 'env-key',
    });
    assert.match(run.url, /^http:\/\/127\.0\.0\.1:\d+\/segment$/);
    const send = (body: unknown) =>
      fetch(run.url, { method: 'POST', headers: segmentHeaders('env-key'), body: JSON.stringify(body) });
    assert.equal((await send({ type: 'identify', userId: 'u1' })).status, 200);
    assert.equal((await send(trackEvent({ pad: 'x'.repeat(300) }))).status, 413);
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
    assert.equal(storedEvents(out).length, 1);
  });
});

describe('flags and variables that say one thing', () => {
  test('a flag given twice is refused, not the last one taken; --api-key may repeat', () => {
    for (const args of [
      ['--port', '1', '--port', '2'],
      ['--out', 'one', '--out', 'two'],
      ['--signature-secret', 'first', '--signature-secret', 'second'],
      ['--access-log', '--access-log'],
    ]) {
      assert.throws(() => configOf(['--api-key', 'k', ...args]), /given twice/, args.join(' '));
    }
    assert.equal([...(configOf(['--api-key', 'a', '--api-key', 'b']).options.apiKeys ?? [])].length, 2);
  });

  test('--http with a certificate is refused: plain HTTP or TLS is not left to which one is read first', async (t) => {
    // A SEGMENT_ENDPOINT_HTTP=1 left in an environment file must not turn a unit that names --cert and
    // --key into plain HTTP.
    const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-http-cert-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const { cert, key } = makeCert(dir, 'localhost');
    const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
      [['--http', '--cert', cert, '--key', key], {}, /^give one of --http and --cert\/--key/],
      [
        ['--cert', cert, '--key', key],
        { SEGMENT_ENDPOINT_HTTP: '1' },
        /^give one of SEGMENT_ENDPOINT_HTTP and/,
      ],
      [
        [],
        { SEGMENT_ENDPOINT_HTTP: '1', SEGMENT_ENDPOINT_CERT: cert, SEGMENT_ENDPOINT_KEY: key },
        /^give one of SEGMENT_ENDPOINT_HTTP and SEGMENT_ENDPOINT_CERT\/SEGMENT_ENDPOINT_KEY/,
      ],
    ];
    const runs = await Promise.all(
      cases.map(([args, env]) => runCli(['--api-key', 'k', '--port', '0', ...args], env, BUILT)),
    );
    for (const [i, [, , message]] of cases.entries()) {
      const res = runs[i] as Finished;
      assert.equal(res.code, 1, res.stderr);
      assert.match(res.stderr.split('\n')[0]?.replace(/^segment-endpoint: /, '') ?? '', message);
    }
    // --http on the command line over a certificate in the environment: the flag wins, said at start.
    const config = configOf(['--api-key', 'k'], { SEGMENT_ENDPOINT_CERT: cert, SEGMENT_ENDPOINT_KEY: key });
    assert.equal(config.tlsFiles, undefined);
    assert.deepEqual(config.unused.map(config.said), [
      'SEGMENT_ENDPOINT_CERT/SEGMENT_ENDPOINT_KEY are not used: --http serves plain HTTP',
    ]);
    // Only what was given is named.
    const certOnly = configOf(['--api-key', 'k'], { SEGMENT_ENDPOINT_CERT: cert });
    assert.deepEqual(certOnly.unused.map(certOnly.said), [
      'SEGMENT_ENDPOINT_CERT is not used: --http serves plain HTTP',
    ]);
    const keyOnly = configOf(['--api-key', 'k'], { SEGMENT_ENDPOINT_KEY: key });
    assert.deepEqual(keyOnly.unused.map(keyOnly.said), [
      'SEGMENT_ENDPOINT_KEY is not used: --http serves plain HTTP',
    ]);
  });

  test('a setting that the rest of the configuration leaves unused is said at start, not silently ignored', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-unused-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const unused = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      configOf(['--api-key', 'k', ...args], env).unused.map((message) => message.split(':')[0]);
    assert.deepEqual(unused([]), []);
    assert.deepEqual(unused(['--postgres-table', 'events']), ['--postgres-table is not used']);
    assert.deepEqual(unused(['--signature-legacy-batch']), ['--signature-legacy-batch is not used']);
    assert.deepEqual(unused(['--signature-legacy-batch', '--signature-secret', 's']), []);
    // A key's own secret is checked under the switch too.
    const keys = join(dir, 'keys');
    writeFileSync(keys, 'tenant-key secret=s3cret\n');
    assert.deepEqual(unused(['--signature-legacy-batch', '--api-keys-file', keys]), []);
    assert.deepEqual(unused(['--access-log', '--log-level', 'warn']), ['--access-log is not used']);
    assert.deepEqual(unused(['--access-log', '--log-level', 'debug']), []);
    // --out where no file store is kept, the database named without its URL (it may hold a password).
    const said = (args: string[]) => configOf(['--api-key', 'k', ...args]).unused;
    assert.deepEqual(said(['--out', dir, '--postgres', 'postgres://u:pw@db/x']), [
      '--out is not used (events stored in PostgreSQL)',
    ]);
    assert.deepEqual(said(['--out', dir, '--handlers', 'h.mjs']), [
      '--out is not used (handlers from h.mjs)',
    ]);
    assert.deepEqual(said(['--postgres', 'postgres://u:pw@db/x']), []);
    // /live given to another path: no flag moves the liveness check, which is then off, its probe a 405.
    assert.deepEqual(said(['--path', '/live']), ['there is no liveness check: --path takes /live']);
    assert.deepEqual(said(['--metrics-path', '/live']), [
      'there is no liveness check: --metrics-path takes /live',
    ]);
    assert.deepEqual(said(['--path', '/events', '--metrics-path', '/metrics']), []);
    // Two keys in one --api-key (as the variable takes them, or a keys file's line) are one key, with the
    // space in it: both customers refused 401, which Segment does not retry. Said, the key never named.
    const spaced =
      'an --api-key holds white space: it is one key, with the space in it; give --api-key once a key';
    assert.deepEqual(said(['--api-key', 'first second']), [spaced]);
    assert.deepEqual(said(['--api-key', 'first second:track']), [spaced]);
    assert.deepEqual(said(['--api-key', 'first', '--api-key', 'second']), []);
    assert.deepEqual(configOf([], { SEGMENT_ENDPOINT_API_KEYS: ' first , second ' }).unused, []);
    // Said at start (once, by the primary with --workers), by the variable it came from.
    const run = await startCli(
      ['--http', '--host', '127.0.0.1', '--port', '0', '--api-key', 'k', '--out', join(dir, 'unused')],
      { SEGMENT_ENDPOINT_POSTGRES_TABLE: 'events' },
    );
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 0);
    assert.match(run.stderr(), /"level":40[^\n]*SEGMENT_ENDPOINT_POSTGRES_TABLE is not used/);
  });

  test('--handler-timeout (SEGMENT_ENDPOINT_HANDLER_TIMEOUT) sets handlerTimeoutMs, in seconds', () => {
    // A handler that forwards to a slow service needs longer than 4 s, or a Segment-like 2 s: the CLI
    // had no way to say either.
    assert.equal(configOf(['--api-key', 'k']).options.handlerTimeoutMs, undefined);
    assert.equal(configOf(['--api-key', 'k', '--handler-timeout', '2.5']).options.handlerTimeoutMs, 2500);
    const fromEnv = configOf(['--api-key', 'k'], { SEGMENT_ENDPOINT_HANDLER_TIMEOUT: '10' });
    assert.equal(fromEnv.options.handlerTimeoutMs, 10_000);
    assert.throws(() => configOf(['--api-key', 'k', '--handler-timeout', '0']), /--handler-timeout must be/);
  });

  test("a number out of its bounds is refused by its flag, in the flag's unit", () => {
    const refused = (args: string[], message: RegExp) =>
      assert.throws(
        () => configOf(['--api-key', 'k', ...args]),
        (err: Error) => {
          assert.ok(err instanceof UsageError, err.message);
          assert.match(err.message, message);
          return true;
        },
      );
    refused(['--port', '70000'], /^--port must be from 0 to 65535, not 70000$/);
    refused(
      ['--shutdown-timeout', '99999999'],
      /^--shutdown-timeout must be from 0 to [\d.]+ seconds, not 99999999$/,
    );
    refused(
      ['--idempotency-ttl', '0.0001'],
      /^--idempotency-ttl must be at least 0.001 seconds, not 0.0001$/, // no upper bound worth saying
    );
    // Past a double's precision, or its range: the value as written, not as read.
    refused(['--port', '9007199254740993'], /^--port must be from 0 to 65535, not 9007199254740993$/);
    refused(
      ['--shutdown-timeout', '9'.repeat(400)],
      new RegExp(`^--shutdown-timeout must be .* seconds, not ${'9'.repeat(400)}$`),
    );
  });

  test("the library's own checks of an option are said of its flag, with the hint", async () => {
    const run = spawnClean(process.execPath, [...CLI, ...httpFlags('k'), '--path', 'nopath']);
    assert.equal(await run.exit, 1);
    assert.match(run.stderr(), /^segment-endpoint: --path must [^\n]*\nTry 'segment-endpoint --help'\.\n$/);
  });

  test('a switch variable is 1/true/yes/on or 0/false/no/off (any case), else refused', () => {
    const log = (value: string) => configOf(['--api-key', 'k'], { SEGMENT_ENDPOINT_ACCESS_LOG: value });
    for (const on of ['1', 'true', 'YES', 'on']) assert.equal(log(on).options.accessLog, true, on);
    for (const off of ['0', 'false', 'No', 'off', '']) assert.notEqual(log(off).options.accessLog, true, off);
    for (const bad of ['2', 'enabled', 'y']) {
      assert.throws(() => log(bad), /SEGMENT_ENDPOINT_ACCESS_LOG must be/, bad);
    }
  });

  test('a bad value from the environment is named by its variable, not by a flag the operator never gave', () => {
    for (const [name, value, message] of [
      ['SEGMENT_ENDPOINT_WORKERS', '0', /^SEGMENT_ENDPOINT_WORKERS must be auto or a whole number/],
      ['SEGMENT_ENDPOINT_MAX_BODY_BYTES', 'abc', /^SEGMENT_ENDPOINT_MAX_BODY_BYTES must be a whole number/],
      ['SEGMENT_ENDPOINT_LOG_LEVEL', 'loud', /^SEGMENT_ENDPOINT_LOG_LEVEL must be /],
    ] as const) {
      assert.throws(() => configOf(['--api-key', 'k'], { [name]: value }), { message }, name);
    }
    // Given as a flag, the flag is named.
    assert.throws(() => configOf(['--api-key', 'k', '--workers', '0'], {}), {
      message: /^--workers must be/,
    });
  });

  test("the library's checks at start, and conflicts, name each variable set and flag given, never options.NAME", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-said-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const module = join(dir, 'typo-handlers.mjs');
    writeFileSync(module, 'export default { identfy() {} };\n');
    const secret = join(dir, 'secret');
    writeFileSync(secret, 'x');
    const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
      [[], { SEGMENT_ENDPOINT_PATH: 'nopath' }, /^SEGMENT_ENDPOINT_PATH must be a path starting with "\/"/],
      [['--metrics-path', '/'], {}, /^--metrics-path must differ from --path \(\/\)$/],
      [[], { SEGMENT_ENDPOINT_METRICS_PATH: '/' }, /^SEGMENT_ENDPOINT_METRICS_PATH must differ from --path/],
      // The health check's path has no flag: said as what it is, not as options.healthPath.
      [['--path', '/health'], {}, /^the health check path must differ from --path \(\/health\)$/],
      [
        [],
        { SEGMENT_ENDPOINT_PATH: '/health' },
        /^the health check path must differ from SEGMENT_ENDPOINT_PATH/,
      ],
      [
        ['--signature-secret-file', secret],
        { SEGMENT_ENDPOINT_SIGNATURE_SECRET: 's' },
        /--signature-secret-file.*SEGMENT_ENDPOINT_SIGNATURE_SECRET|SEGMENT_ENDPOINT_SIGNATURE_SECRET.*--signature-secret-file/,
      ],
      [
        ['--handlers', module],
        {},
        /^--handlers .*typo-handlers\.mjs: identfy is not a Segment event type: did you mean identify\?/,
      ],
      [[], { SEGMENT_ENDPOINT_CERT: '/some/cert.pem' }, /^--key is required for HTTPS/],
    ];
    // The command as shipped, all at once (as the usage errors above): the messages are the same code's.
    const runs = await Promise.all(
      cases.map(([args, env]) => {
        const http = env.SEGMENT_ENDPOINT_CERT === undefined ? ['--http'] : [];
        return runCli([...http, '--api-key', 'k', '--port', '0', ...args], env, BUILT);
      }),
    );
    for (const [i, [args, env, message]] of cases.entries()) {
      const res = runs[i] as Awaited<ReturnType<typeof runCli>>;
      assert.equal(res.code, 1, `${args.join(' ')} ${JSON.stringify(env)}: ${res.stderr}`);
      const line = res.stderr.split('\n')[0]?.replace(/^segment-endpoint: /, '') ?? '';
      assert.match(line, message);
      assert.doesNotMatch(line, /options\./);
    }
  });

  test('a variable set but empty is refused, not taken as unset: a lost secret must not turn checks off', () => {
    // `SEGMENT_ENDPOINT_SIGNATURE_SECRET=` in an EnvironmentFile whose template lost the value used to
    // start an endpoint that accepted unsigned events, where `--signature-secret ''` is refused.
    for (const name of [
      'SEGMENT_ENDPOINT_SIGNATURE_SECRET',
      'SEGMENT_ENDPOINT_SIGNATURE_SECRET_FILE',
      'SEGMENT_ENDPOINT_IDEMPOTENCY_REDIS_URL',
      'SEGMENT_ENDPOINT_PORT',
    ]) {
      assert.throws(
        () => configOf(['--api-key', 'k'], { [name]: '' }),
        { message: `${name} is set but empty: give it a value, or unset it` },
        name,
      );
    }
    // The flag given wins over the variable, as for any other value.
    assert.equal(configOf(['--api-key', 'k', '--port', '9'], { SEGMENT_ENDPOINT_PORT: '' }).options.port, 9);
  });
});

describe('Segment legacy batch signing is opt-in', () => {
  test('off by default; on with --signature-legacy-batch or SEGMENT_ENDPOINT_SIGNATURE_LEGACY_BATCH', () => {
    assert.equal(configOf(['--api-key', 'k']).options.signatureLegacyBatch, false);
    assert.equal(configOf(['--api-key', 'k', '--signature-legacy-batch']).options.signatureLegacyBatch, true);
    const env = { SEGMENT_ENDPOINT_SIGNATURE_LEGACY_BATCH: '1' };
    assert.equal(configOf(['--api-key', 'k'], env).options.signatureLegacyBatch, true);
  });
});

describe('--idempotency-max-entries 0', () => {
  test('turns duplicate suppression off through the library option of the same name', () => {
    const config = configOf(['--api-key', 'k', '--idempotency-max-entries', '0', '--idempotency-ttl', '60']);
    assert.deepEqual(config.options.idempotency, { maxEntries: 0, ttlMs: 60_000 });
    const resolved = resolveHandlerOptions({ handlers: {}, ...config.options, log: silentLogger });
    assert.equal(resolved.idempotency, undefined, 'no duplicate filter, as with idempotency: false');
  });
});
