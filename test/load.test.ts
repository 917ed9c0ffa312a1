import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { EndpointServer } from '../src/index.ts';
import { loadMain } from '../src/load/command.ts';
import { eventSource, MIX, RETRY_EVERY, typeCycle } from '../src/load/mix.ts';
import { type LoadFigures, report, verdict } from '../src/load/report.ts';
import { segmentHeaders } from '../src/tester/headers.ts';
import { EVENT_TYPES } from '../src/types.ts';
import { API_KEY, recorder, type Seen } from './helpers.ts';
import { listenTls } from './helpers-cert.ts';
import { CLI, runIntoFullDisk, spawnClean } from './helpers-spawn.ts';
import { capture, freePort } from './load-harness.ts';

// `segment-endpoint load` against the endpoint itself, over TLS with the test certificate, and its report
// as pure functions. Runs are kept short (1–2 s) and light (the machine may have 2 cores).

describe('segment-endpoint load against the endpoint', () => {
  let endpoint: EndpointServer;
  let url: string;
  let seen: Seen;
  let connections = 0;

  before(async () => {
    const recording = recorder();
    seen = recording.seen;
    ({ endpoint, url } = await listenTls({ handlers: recording.handlers, metricsPath: '/metrics' }));
    endpoint.server.on('connection', () => connections++);
  });
  after(() => endpoint.close());

  const snapshot = () => endpoint.handler.metrics?.snapshot(0);
  const answered = () => Object.values(snapshot()?.requests ?? {}).reduce((a, b) => a + b, 0);

  test('2 s at --rate 200 over 4 connections: ~200 req/s, all 200, every type, retries the endpoint drops', async () => {
    const before = { connections, answered: answered() };
    const run = spawnClean(process.execPath, [
      ...CLI,
      ...['load', url, '--api-key', API_KEY, '--rate', '200', '--connections', '4', '--duration', '2'],
      ...['--insecure', '--settings', '{"region":"eu"}'],
    ]);
    assert.equal(await run.exit, 0, run.stdout() + run.stderr());
    const out = run.stdout();
    const perSecond = Number(/^Requests\/s:\s+([\d.]+)/m.exec(out)?.[1]);
    assert.ok(perSecond >= 120 && perSecond <= 260, out);
    assert.match(out, /^Statuses:\s+200: \d+$/m);
    assert.match(out, /^Latency:\s+p50 [\d.]+ ms, p90 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms$/m);
    assert.match(out, /^PASS: p99 [\d.]+ ms: within Segment's 5 s timeout/m);
    const retries = Number(/same messageId\): (\d+)/.exec(out)?.[1]);
    assert.ok(retries >= 2, out);

    assert.deepEqual(new Set(seen.map((s) => s.event.type)), new Set(EVENT_TYPES));
    const ids = seen.map((s) => String(s.event.messageId));
    assert.equal(new Set(ids).size, ids.length, 'each handler call a new messageId: retries were dropped');
    const duplicates = snapshot()?.duplicates ?? 0;
    assert.ok(duplicates >= 1 && duplicates <= retries, `${duplicates} duplicates, ${retries} retries`);
    assert.equal(answered() - before.answered, seen.length + duplicates);
    for (const { ctx } of seen) {
      assert.equal(ctx.headers['user-agent'], 'Segment.io/1.0');
      assert.deepEqual(ctx.settings, { region: 'eu' });
    }
    // Kept alive: the 4 connections carried every event, and one more came first, the probe's.
    assert.equal(connections - before.connections, 5);
  });

  test('a short run sends what --rate asks: 2 s at 10 req/s is 20 requests, not a third second of them', async () => {
    // Each connection sends its share at the start of each second of the run; the second that starts as
    // the run ends used to be sent too (30 or 40 requests here).
    for (let round = 0; round < 2; round++) {
      const out = capture();
      const args = ['--rate', '10', '--connections', '2', '--duration', '2', '--insecure'];
      assert.equal(await loadMain([url, '--api-key', API_KEY, ...args], out.io), 0, out.stdout());
      assert.match(out.stdout(), /^Sent 20 requests /m);
      const perSecond = Number(/^Requests\/s:\s+([\d.]+)/m.exec(out.stdout())?.[1]);
      assert.ok(perSecond >= 9 && perSecond <= 11, out.stdout());
    }
  });

  test('stdout that cannot be written (a full disk): one line on stderr, exit 1, not a stack trace', async () => {
    const args = ['load', url, '--api-key', API_KEY, '--rate', '10', '--duration', '1', '--insecure'];
    const { code, stderr } = await runIntoFullDisk(args);
    assert.equal(code, 1);
    assert.match(stderr, /^segment-endpoint load: cannot write to stdout: .*ENOSPC.*\n$/);
  });

  test('without --insecure a self-signed certificate stops it before any event is sent', async () => {
    const before = answered();
    const out = capture();
    const code = await loadMain([url, '--api-key', API_KEY, '--duration', '1'], out.io);
    assert.equal(code, 1);
    assert.match(out.stderr(), /certificate .*does not verify: self-signed certificate/);
    assert.match(out.stderr(), /--insecure/);
    assert.equal(out.stdout(), '');
    assert.equal(answered(), before);
  });

  test('http:// to a TLS port: no HTTP answer, so nothing is sent', async () => {
    const before = answered();
    const out = capture();
    const plain = url.replace('https://', 'http://');
    assert.equal(await loadMain([plain, '--api-key', API_KEY, '--duration', '1'], out.io), 1);
    assert.match(out.stderr(), /did not answer HTTP: is it https:\/\/ \?/);
    assert.equal(out.stdout(), '');
    assert.equal(answered(), before);
  });

  test('a wrong API key: the report shows the 401s and the run fails', async () => {
    const out = capture();
    const args = ['--rate', '40', '--connections', '2', '--duration', '1', '--insecure'];
    const code = await loadMain([url, '--api-key', 'not-the-key', ...args], out.io);
    assert.equal(code, 1, out.stdout());
    assert.match(out.stdout(), /^Statuses:\s+401: \d+$/m);
    assert.match(out.stdout(), /^FAIL: \d+ answers were not 2xx \(401: \d+\)/m);
  });
});

describe('segment-endpoint load with nothing listening', () => {
  test('http:// and https:// with --insecure: connection refused, nothing sent', async () => {
    const port = await freePort();
    for (const url of [`http://127.0.0.1:${port}/`, `https://127.0.0.1:${port}/events`]) {
      const out = capture();
      assert.equal(await loadMain([url, '--api-key', API_KEY, '--insecure'], out.io), 1);
      assert.match(out.stderr(), /connection refused by 127\.0\.0\.1:\d+/);
      assert.equal(out.stdout(), '');
    }
  });
});

describe('segment-endpoint load flags', () => {
  const cases: Array<[string, string[], RegExp]> = [
    ['no URL', ['--api-key', 'k'], /URL is required/],
    ['not http', ['ftp://x/', '--api-key', 'k'], /not an http/],
    ['a port out of range', ['https://127.0.0.1:99999/', '--api-key', 'k'], /not a valid URL: its port/],
    [
      '--rate past what a number holds exactly',
      ['https://x/', '--api-key', 'k', '--rate', '99999999999999999999'],
      /--rate must be at most 9007199254740991, not "99999999999999999999"/,
    ],
    ['credentials in the URL', ['https://u:p@x/', '--api-key', 'k'], /credentials/],
    ['no --api-key', ['https://x/'], /--api-key is required/],
    ['--rate 0', ['https://x/', '--api-key', 'k', '--rate', '0'], /--rate must be a positive integer/],
    ['--connections 1.5', ['https://x/', '--api-key', 'k', '--connections', '1.5'], /--connections must/],
    ['--duration -1', ['https://x/', '--api-key', 'k', '--duration=-1'], /--duration must/],
    // Ten digits are a positive integer too: what is wrong with them is their size.
    [
      '--connections 1000000000',
      ['https://x/', '--api-key', 'k', '--connections', '1000000000'],
      /--connections must be at most 10000, not 1000000000/,
    ],
    [
      '--duration 1000000000',
      ['https://x/', '--api-key', 'k', '--duration', '1000000000'],
      /--duration must be at most 86400 s/,
    ],
    ['--settings an array', ['https://x/', '--api-key', 'k', '--settings', '[1]'], /JSON object/],
    // In the product's words, not parseArgs's advice about positionals (and its unbalanced quote).
    [
      'an unknown flag',
      ['https://x/', '--api-key', 'k', '--workers', '2'],
      /^segment-endpoint load: Unknown option '--workers'$/,
    ],
    [
      'a misspelt flag',
      ['https://x/', '--api-key', 'k', '--durration', '2'],
      /^segment-endpoint load: Unknown option '--durration': did you mean --duration\?$/,
    ],
    ['two URLs', ['https://x/', 'https://y/', '--api-key', 'k'], /one URL only/],
    [
      '--types with a type that is none',
      ['https://x/', '--api-key', 'k', '--types', 'track,pgae'],
      /^segment-endpoint load: --types: "pgae" is not an event type \(identify, track, page, screen, group, alias, delete\)$/,
    ],
    ['--types empty', ['https://x/', '--api-key', 'k', '--types', ''], /--types names no event type/],
  ];
  for (const [name, args, message] of cases) {
    test(`${name}: exit 1, one line and a hint`, async () => {
      const out = capture();
      assert.equal(await loadMain(args, out.io), 1);
      const [line, hint, rest] = out.stderr().split('\n');
      assert.match(line ?? '', message);
      assert.equal(hint, "Try 'segment-endpoint load --help'.");
      assert.equal(rest, '');
    });
  }

  test('--help: usage on stdout, exit 0', async () => {
    const out = capture();
    assert.equal(await loadMain(['--help'], out.io), 0);
    assert.match(out.stdout(), /^Usage: segment-endpoint load URL --api-key KEY/);
  });

  test('a flag given twice exits 1: which one was meant cannot be known', async () => {
    const out = capture();
    const args = ['https://x/', '--api-key', 'k', '--duration', '1', '--duration', '2'];
    assert.equal(await loadMain(args, out.io), 1);
    assert.match(out.stderr(), /--duration given twice/);
  });

  test('through the CLI: a bad flag exits 1 before any connection', async () => {
    const run = spawnClean(process.execPath, [...CLI, 'load', 'https://x/', '--api-key', 'k', '--rate', 'x']);
    assert.equal(await run.exit, 1);
    assert.match(run.stderr(), /^segment-endpoint load: --rate must be a positive integer, not "x"\n/);
  });
});

describe('the mix', () => {
  test('each 100 new events are the mix exactly, and every type comes within the first 50', () => {
    const cycle = typeCycle();
    assert.equal(cycle.length, 100);
    for (const type of EVENT_TYPES) assert.equal(cycle.filter((t) => t === type).length, MIX[type], type);
    assert.deepEqual(new Set(cycle.slice(0, 50)), new Set(EVENT_TYPES));
  });

  test('every request a new messageId, but one in 100: the event sent 50 before, unchanged', () => {
    const source = eventSource(API_KEY);
    const bodies = Array.from({ length: 300 }, () => source.next());
    const ids = bodies.map((b) => (JSON.parse(b.toString()) as { messageId: string }).messageId);
    assert.equal(new Set(ids).size, 300 - 3);
    for (const n of [99, 199, 299]) assert.equal(bodies[n], bodies[n - 50]);
    assert.deepEqual(source.sent(), {
      types: { identify: 45, track: 148, page: 59, screen: 15, group: 15, alias: 9, delete: 6 },
      retries: 300 / RETRY_EVERY,
    });
    assert.match(ids[0] ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  test('--types: only those types, in their shares of the mix', () => {
    // An endpoint that takes identify and track answers the others 501, which the run counts against it.
    const source = eventSource(API_KEY, ['track', 'identify']);
    for (let i = 0; i < 650; i++) source.next();
    const { types, retries } = source.sent();
    assert.deepEqual(
      Object.keys(types).filter((type) => types[type as keyof typeof types] > 0),
      ['identify', 'track'],
    );
    assert.equal(types.identify + types.track + retries, 650);
    // 15 identify to 50 track, as in the whole mix: each 65 new events exactly that.
    assert.ok(
      Math.abs(types.identify / (types.identify + types.track) - 15 / 65) < 0.01,
      `${types.identify}`,
    );
  });

  test("Segment's headers: Basic key with an empty password, settings base64 JSON ({} by default)", () => {
    assert.deepEqual(segmentHeaders('segment', 'e30='), {
      Authorization: 'Basic c2VnbWVudDo=',
      'Content-Type': 'application/json',
      'User-Agent': 'Segment.io/1.0',
      Accept: '*/*',
      'Cache-Control': 'no-cache',
      'X-Segment-Settings': 'e30=',
    });
  });
});

describe('the report', () => {
  const figures = (changes: Partial<LoadFigures> = {}): LoadFigures => ({
    url: 'https://localhost:8443/',
    seconds: 10,
    connections: 10,
    rate: 1000,
    sent: {
      types: { track: 4950, page: 1980, identify: 1485, screen: 495, group: 495, alias: 297, delete: 198 },
      retries: 100,
    },
    statuses: { '200': 10_000 },
    latency: { p50: 0.42, p90: 1.234, p99: 12.345, max: 123.4 },
    late: 0,
    timeouts: 0,
    errors: {},
    ...changes,
  });

  test("this machine's own limits (out of file descriptors) are said as such, not blamed on the endpoint", () => {
    const { ok, lines } = verdict(figures({ errors: { EMFILE: 3768, ECONNRESET: 2 } }));
    assert.equal(ok, false);
    assert.deepEqual(lines, [
      'FAIL: 2 requests got no answer (ECONNRESET: 2): Segment would retry them.',
      "FAIL: 3768 requests could not be sent from this machine (EMFILE: 3768): not the endpoint's doing; " +
        'raise the open-file limit (ulimit -n) or use fewer --connections.',
    ]);
  });

  test('all 2xx in time: PASS with the p99, and the figures in the report', () => {
    assert.deepEqual(verdict(figures()), {
      ok: true,
      lines: ["PASS: p99 12.3 ms: within Segment's 5 s timeout, and all 10000 answers were 2xx."],
    });
    const text = report(figures({ statuses: { '200': 9_000, '202': 1_000 } }));
    assert.match(text, /^Sent 10000 requests to https:\/\/localhost:8443\/ in 10\.00 s over 10 connections/);
    assert.match(text, /new events: track 4950, page 1980, identify 1485, .*; retries .*: 100$/m);
    assert.match(text, /^Requests\/s:\s+1000\.0 \(10000 answered\)$/m);
    assert.match(text, /^Latency:\s+p50 0\.42 ms, p90 1\.23 ms, p99 12\.3 ms, max 123 ms$/m);
    assert.match(text, /^Statuses:\s+200: 9000, 202: 1000$/m);
    assert.match(text, /^Errors:\s+none$/m);
    assert.doesNotMatch(text, /^Note:/m);
    const stopped = report(figures({ statuses: { '200': 9_990 } }));
    assert.match(stopped, /^Requests\/s:\s+999\.0 \(9990 answered, 10 in flight at the end\)$/m);
  });

  test("slow: answers over 5 s and timeouts fail against Segment's 5 s timeout", () => {
    const slow = verdict(
      figures({ late: 3, timeouts: 2, latency: { p50: 900, p90: 4000, p99: 5200, max: 5400 } }),
    );
    assert.equal(slow.ok, false);
    assert.deepEqual(slow.lines, ['FAIL: 5 requests took over 5 s or timed out: Segment would retry them.']);
  });

  test('not 2xx, errors, nothing answered: each its own FAIL line', () => {
    const bad = verdict(
      figures({ statuses: { '200': 9871, '503': 12, '401': 3 }, errors: { ECONNRESET: 2 } }),
    );
    assert.equal(bad.ok, false);
    assert.match(bad.lines[0] ?? '', /^FAIL: 15 answers were not 2xx \(401: 3, 503: 12\)/);
    assert.equal(bad.lines[1], 'FAIL: 2 requests got no answer (ECONNRESET: 2): Segment would retry them.');
    // A 501 is a type the endpoint does not take: the line says how to leave those types out.
    const partial = verdict(figures({ statuses: { '200': 500, '501': 120 } }));
    assert.match(
      partial.lines[0] ?? '',
      /501 is a type the endpoint does not take: --types sends only the ones it takes/,
    );
    const none = figures({ statuses: {} });
    const { latency: _, ...withoutLatency } = none;
    assert.deepEqual(verdict(withoutLatency), { ok: false, lines: ['FAIL: no request was answered.'] });
    assert.match(report(withoutLatency), /^Latency:\s+no answers$/m);
  });

  test('a rate not kept up with gets a note', () => {
    const text = report(figures({ statuses: { '200': 5_000 } }));
    assert.match(text, /^Note: 500\.0 req\/s of the 1000 asked/m);
  });
});
