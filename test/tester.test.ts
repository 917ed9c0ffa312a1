import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createServer as createHttpServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createServer, type EndpointServer, type Handlers, silentLogger } from '../src/index.ts';
import { runSender } from '../src/sender-args.ts';
import { testMain } from '../src/tester/command.ts';
import { run } from '../src/tester/run.ts';
import { suite } from '../src/tester/suite.ts';
import { testCert } from './helpers-cert.ts';
import { CLI, ROOT, runIntoFullDisk } from './helpers-spawn.ts';

const KEY = 'tester-key';
const CASES = suite({ id: 'x', apiKey: KEY, now: new Date() });
const GOOD = CASES.filter((c) => c.expect === 'accept');
const BAD = CASES.filter((c) => c.expect !== 'accept');
const SUMMARY_OK = new RegExp(`^${CASES.length} passed, 0 failed$`, 'm');
/** The suite of a run with `--settings`: no case sends settings of its own. */
const WITH_SETTINGS = suite({ id: 'x', apiKey: KEY, now: new Date(), settings: true });

/** Events the endpoints here have handled: how many a run sent. */
let received = 0;
const ok = () => {
  received++;
};
const HANDLERS: Handlers = {
  identify: ok,
  track: ok,
  page: ok,
  screen: ok,
  group: ok,
  alias: ok,
  delete: () => ({ status: 202 }),
};

/** Captures what testMain writes, instead of the process's own streams. */
function sink() {
  const out = { text: '', write: (s: string) => (out.text += s) };
  const err = { text: '', write: (s: string) => (err.text += s) };
  return { io: { stdout: out, stderr: err }, out, err };
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`),
    ),
  );
}

describe('the suite', () => {
  test('covers every event type as a good event, and bad ones with a 4xx (or 501 for an unknown type)', () => {
    const goodTypes = new Set(GOOD.map((c) => (c.body as { type?: string }).type?.toLowerCase()));
    for (const type of ['identify', 'track', 'page', 'screen', 'group', 'alias', 'delete']) {
      assert.ok(goodTypes.has(type), type);
    }
    for (const c of BAD) {
      for (const status of [c.expect].flat()) {
        assert.ok(typeof status === 'number' && ((status >= 400 && status < 500) || status === 501), c.name);
      }
    }
    assert.equal(new Set(CASES.map((c) => c.name)).size, CASES.length, 'names are unique');
  });

  test('every messageId is new per run; only the retry repeats one', () => {
    const ids = (s: ReturnType<typeof suite>) =>
      s.flatMap((c) =>
        typeof c.body === 'string' || !('messageId' in c.body) ? [] : [c.body.messageId as string],
      );
    const first = ids(CASES);
    assert.equal(new Set(first).size, first.length - 1);
    const second = ids(suite({ id: 'y', apiKey: KEY, now: new Date() }));
    assert.ok(second.every((id) => !first.includes(id)));
    assert.ok(first.every((id) => id.length <= 100));
  });
});

describe('against our own endpoint', () => {
  let plain: EndpointServer;
  let tls: EndpointServer;
  let plainUrl: string;
  let tlsUrl: string;
  const { cert, key } = testCert();

  before(async () => {
    const common = { host: '127.0.0.1', port: 0, apiKeys: [KEY], handlers: HANDLERS, log: silentLogger };
    plain = createServer({ ...common, http: true });
    tls = createServer({ ...common, tls: { cert, key } });
    plainUrl = await plain.listen();
    tlsUrl = await tls.listen();
  });
  after(async () => {
    await plain.close();
    await tls.close();
  });

  test('over HTTP every case passes, with and without settings, and the exit code is 0', async () => {
    const lines: string[] = [];
    const summary = await run(plainUrl, { apiKey: KEY }, (line) => lines.push(line));
    const failures = summary.results.filter((r) => !r.pass);
    assert.deepEqual(failures, []);
    assert.equal(summary.passed, CASES.length);
    assert.match(lines.join('\n'), SUMMARY_OK);
    assert.equal(lines.at(-1), `${CASES.length} passed, 0 failed`);
    // Kept alive across every acceptance, and a GET answered 405 with Allow: POST.
    assert.doesNotMatch(lines.join('\n'), /^Warning/m);

    const { io, out } = sink();
    assert.equal(await testMain([plainUrl, '--api-key', KEY, '--settings', '{"region":"eu"}'], io), 0);
    assert.match(out.text, new RegExp(`^${WITH_SETTINGS.length} passed, 0 failed$`, 'm'));
    assert.equal(WITH_SETTINGS.length, CASES.length - 1, 'no settings of its own: one case fewer');
    assert.match(out.text, /^1\. identify$/m);
    assert.match(out.text, /^ {3}POST http:\/\/127\.0\.0\.1:\d+\/ \{"type":"identify"/m);
    assert.match(out.text, /^ {3}401 Invalid API key$/m);
    assert.match(out.text, /^ {3}PASS \(expected 400 or 501\)$/m);
    assert.doesNotMatch(out.text, new RegExp(Buffer.from(`${KEY}:`).toString('base64')));
  });

  test('an endpoint that takes only some types passes: its 501 for the others is what the contract asks', async () => {
    // Segment's contract: a type the destination does not take is answered 501, which Segment does not
    // retry. The suite counted those as failures, and its cases on a type's own fields (group without
    // groupId) expected the 400 that comes after the type check.
    const partial = createServer({
      host: '127.0.0.1',
      port: 0,
      http: true,
      apiKeys: [KEY],
      handlers: { identify: ok, track: ok },
      log: silentLogger,
    });
    const url = await partial.listen();
    try {
      const lines: string[] = [];
      const summary = await run(url, { apiKey: KEY }, (line) => lines.push(line));
      assert.deepEqual(
        summary.results.filter((r) => !r.pass),
        [],
      );
      const text = lines.join('\n');
      assert.match(
        text,
        /^ {3}PASS \(501: this endpoint does not take page events, as the contract allows\)$/m,
      );
      assert.match(text, /^Not taken by this endpoint \(501\): page, screen, group, alias, delete$/m);
      assert.equal(lines.at(-1), `${CASES.length} passed, 0 failed`);
    } finally {
      await partial.close();
    }
  });

  test('an endpoint that answers 501 to every event fails: it takes no type at all', async () => {
    const none = createHttpServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(501, { 'content-type': 'application/json' }).end('{"message":"no"}'));
    });
    const url = await listen(none);
    try {
      const lines: string[] = [];
      const summary = await run(url, { apiKey: KEY }, (line) => lines.push(line));
      assert.ok(summary.failed > 0);
      // Every case fails but the unknown type's, whose 501 is owed.
      const owed501 = CASES.filter((c) => Array.isArray(c.expect) && c.expect.includes(501)).length;
      assert.equal(summary.failed, CASES.length - owed501, 'the 501s count as failures too');
      assert.match(lines.join('\n'), /^No event type is taken: every good event was answered 501$/m);
    } finally {
      none.close();
    }
  });

  test('the CLI runs it: test URL --api-key KEY --insecure over TLS exits 0', async () => {
    const child = spawn(process.execPath, [...CLI, 'test', tlsUrl, '--api-key', KEY, '--insecure'], {
      cwd: ROOT,
    });
    let stdout = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 0, stdout);
    assert.match(stdout, SUMMARY_OK);
  });

  test('an API key beyond Latin-1 passes too: every header the suite sends can be sent', async () => {
    const apiKey = 'ключ-🔑';
    const endpoint = createServer({
      host: '127.0.0.1',
      port: 0,
      http: true,
      apiKeys: [apiKey],
      handlers: HANDLERS,
      log: silentLogger,
    });
    try {
      const summary = await run(await endpoint.listen(), { apiKey }, () => {});
      assert.deepEqual(
        summary.results.filter((r) => !r.pass),
        [],
      );
    } finally {
      await endpoint.close();
    }
  });

  test('stdout closed after the first line (| head -1): the run stops quietly, exit 1, not every case sent', async () => {
    const before = received;
    const child = spawn(process.execPath, [...CLI, 'test', plainUrl, '--api-key', KEY], { cwd: ROOT });
    let stderr = '';
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(stderr, '');
    assert.equal(code, 1);
    assert.ok(received - before < GOOD.length, `${received - before} events sent after stdout closed`);
  });

  test('stdout that cannot be written (a full disk): one line on stderr, exit 1', async () => {
    const { code, stderr } = await runIntoFullDisk(['test', plainUrl, '--api-key', KEY]);
    assert.equal(code, 1);
    assert.match(stderr, /^segment-endpoint test: cannot write to stdout: .*ENOSPC.*\n$/);
  });

  test('over TLS without --insecure a self-signed certificate is refused: every case fails', async () => {
    const summary = await run(tlsUrl, { apiKey: KEY }, () => {});
    assert.equal(summary.failed, CASES.length);
    assert.match(summary.results[0]?.error ?? '', /self-signed|certificate/i);
  });
});

describe('against a wrong endpoint', () => {
  test('one that answers 200 to everything: the bad cases fail and the exit code is 1', async () => {
    const seen: Array<{ headers: IncomingHttpHeaders; body: string; port: number | undefined }> = [];
    const server = createHttpServer((req, res) => {
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        if (req.method === 'POST') seen.push({ headers: req.headers, body, port: req.socket.remotePort });
        res.end();
      });
    });
    const url = await listen(server);
    try {
      const lines: string[] = [];
      const summary = await run(url, { apiKey: KEY, settings: { region: 'eu' } }, (l) => lines.push(l));
      assert.deepEqual(
        summary.results.filter((r) => !r.pass).map((r) => r.name),
        BAD.map((c) => c.name),
      );
      const good = WITH_SETTINGS.filter((c) => c.expect === 'accept').length;
      assert.equal(summary.passed, good);
      assert.equal(lines.at(-1), `${good} passed, ${BAD.length} failed`);
      assert.match(lines.join('\n'), /^ {3}FAIL \(expected 401\)$/m);

      // Exactly Segment's headers, on one kept-alive connection.
      const first = seen[0];
      assert.ok(first !== undefined);
      assert.equal(first.headers.authorization, `Basic ${Buffer.from(`${KEY}:`).toString('base64')}`);
      assert.equal(first.headers['content-type'], 'application/json');
      assert.equal(first.headers['user-agent'], 'Segment.io/1.0');
      assert.equal(first.headers.accept, '*/*');
      assert.equal(first.headers['cache-control'], 'no-cache');
      assert.equal(first.headers.connection, 'keep-alive');
      assert.equal(first.headers['content-length'], String(Buffer.byteLength(first.body)));
      const settings = Buffer.from(String(first.headers['x-segment-settings']), 'base64').toString();
      assert.deepEqual(JSON.parse(settings), { region: 'eu' });
      assert.equal(seen.length, WITH_SETTINGS.length);
      assert.equal(new Set(seen.map((s) => s.port)).size, 1);
      const noAuth = seen.find((s) => s.body.includes('"userId"') && s.headers.authorization === undefined);
      assert.ok(noAuth !== undefined, 'the no-Authorization case sends none');

      const { io, out } = sink();
      assert.equal(await testMain([url, '--api-key', KEY], io), 1);
      assert.match(out.text, new RegExp(`^${GOOD.length} passed, ${BAD.length} failed$`, 'm'));
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  test('one that answers 101 Switching Protocols: every case fails, the summary is printed, exit 1', async () => {
    // Node hands a 101 to an 'upgrade' listener, not as a response: with none, the requests neither
    // answered nor failed, the process ran out of work and exited 0 with no summary.
    const server = createHttpServer();
    server.on('upgrade', (_req, socket) =>
      socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n'),
    );
    server.on('request', (_req, res) => {
      res.writeHead(101, { upgrade: 'x', connection: 'upgrade' }).end();
    });
    const url = await listen(server);
    try {
      const { io, out } = sink();
      assert.equal(await testMain([url, '--api-key', KEY], io), 1);
      assert.match(out.text, new RegExp(`^0 passed, ${CASES.length} failed$`, 'm'));
      assert.match(out.text, /101/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  test("an endpoint's message is printed on its line: control characters shown escaped", async () => {
    const server = createHttpServer((req, res) => {
      req.resume();
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: `no\n\n${CASES.length} passed, 0 failed\n\u001b[2K` }));
    });
    const url = await listen(server);
    try {
      const { io, out } = sink();
      assert.equal(await testMain([url, '--api-key', KEY], io), 1);
      assert.doesNotMatch(out.text, new RegExp(`^${CASES.length} passed, 0 failed$`, 'm'));
      assert.ok(!out.text.includes('\u001b'), 'no escape character reaches the terminal');
      assert.match(out.text, /no\\n\\n/);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  test('one that never answers: each request times out and counts as a failure', async () => {
    const server = createHttpServer(() => {});
    const url = await listen(server);
    try {
      const summary = await run(url, { apiKey: KEY, timeoutMs: 50 }, () => {});
      assert.equal(summary.failed, CASES.length);
      assert.ok(summary.results.every((r) => r.status === undefined && /timed out/.test(r.error ?? '')));
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('bad usage', () => {
  test('exits 1 with one line and a hint', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--api-key', KEY], /URL is required/],
      [['http://127.0.0.1:1/'], /--api-key is required/],
      [['http://127.0.0.1:1/', '--api-key', ''], /--api-key is required/],
      [
        ['http://127.0.0.1:1/', '--api-key', KEY, '--settings', '[1]'],
        /--settings is an array: a JSON object/,
      ],
      [
        ['http://127.0.0.1:1/', '--api-key', KEY, '--settings', 'region=eu'],
        /--settings is not JSON: a JSON object is wanted/,
      ],
      [['http://127.0.0.1:1/', '--api-key', KEY, '--settings', 'null'], /--settings is null: a JSON object/],
      [['ftp://example.com/', '--api-key', KEY], /not an http:\/\/ or https:\/\/ URL/],
      [['http://a/', 'http://b/', '--api-key', KEY], /one URL only/],
      // The rest of an unquoted key, read as the URL or beside it: named by its place, never shown.
      [
        ['--api-key', 'KEY-ONE', 'KEY-TWO'],
        /^[^\n]*argument 4 \(not shown[^\n]*after --api-key and its value/,
      ],
      [
        ['--api-key', 'KEY-ONE', 'KEY-TWO', 'http://127.0.0.1:1/'],
        /^[^\n]*argument 4 \(not shown[^\n]*after --api-key and its value/,
      ],
      [['http://127.0.0.1:1/', '--api-key', KEY, '--bogus'], /bogus/],
      // A word where the URL goes (a host without its scheme, the rest of a key): what it must be, said first.
      [
        ['localhost:8443', '--api-key', KEY],
        /^segment-endpoint test: the endpoint URL must start with http:\/\/ or https:\/\/: argument 2 \(not shown/,
      ],
    ];
    for (const [args, message] of cases) {
      const { io, out, err } = sink();
      assert.equal(await testMain(args, io), 1, args.join(' '));
      assert.match(err.text, message, args.join(' '));
      assert.match(err.text, /^segment-endpoint test: .*\nTry 'segment-endpoint test --help'\.\n$/);
      assert.equal(out.text, '', 'nothing is sent');
      assert.doesNotMatch(err.text, /KEY-TWO/);
    }
  });

  test('--help prints the usage and exits 0', async () => {
    const { io, out } = sink();
    assert.equal(await testMain(['--help'], io), 0);
    assert.match(out.text, /^Usage: segment-endpoint test URL --api-key KEY/);
  });
});

test('an endpoint that cannot be reached as asked is said once, before any case is sent', async () => {
  // A self-signed certificate without --insecure: the same OpenSSL line 31 times, and no hint.
  const endpoint = createServer({
    tls: testCert(),
    host: '127.0.0.1',
    port: 0,
    apiKeys: [KEY],
    handlers: HANDLERS,
    log: silentLogger,
  });
  const url = await endpoint.listen();
  try {
    const { io, out, err } = sink();
    assert.equal(await testMain([url, '--api-key', KEY], io), 1);
    assert.equal(out.text, '');
    assert.match(err.text, /^segment-endpoint test: the certificate of .* does not verify: .*--insecure/);
    assert.equal(err.text.split('\n').filter((line) => line !== '').length, 1);
  } finally {
    await endpoint.close();
  }
});

test('--settings is sent as given: a number past a double, or a key twice, is not rewritten', async () => {
  const text = '{"accountId":12345678901234567890,"limit":1e999,"a":1,"a":2}';
  const seen = new Set<string>();
  const server = createHttpServer((req, res) => {
    req.resume();
    seen.add(String(req.headers['x-segment-settings']));
    res.end();
  });
  const url = await listen(server);
  try {
    const { io } = sink();
    await testMain([url, '--api-key', KEY, '--settings', text], io);
    // (Besides the cases that send settings of their own, malformed on purpose.)
    const sent = [...seen].map((header) => Buffer.from(header, 'base64').toString());
    assert.ok(sent.includes(text), sent.join('\n'));
    assert.ok(!sent.some((settings) => settings.includes('12345678901234567000')), sent.join('\n'));
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test("a write to stdout that fails after the run's last line (a disk filling up): exit 1, said on stderr", async () => {
  const stdout = new EventEmitter() as EventEmitter & { write(text: string): boolean };
  stdout.write = (text) => {
    if (text.includes('passed')) {
      process.nextTick(() =>
        stdout.emit('error', Object.assign(new Error('write ENOSPC'), { code: 'ENOSPC' })),
      );
    }
    return true;
  };
  const err = sink().err;
  const run = async (_: unknown, io: { stdout: { write(text: string): unknown } }) => {
    io.stdout.write('1 passed, 0 failed\n');
    return 0;
  };
  const code = await runSender(
    'segment-endpoint test',
    { stdout, stderr: err },
    () => ({}),
    () => '',
    run,
  );
  assert.equal(code, 1);
  assert.equal(err.text, 'segment-endpoint test: cannot write to stdout: write ENOSPC\n');
});
