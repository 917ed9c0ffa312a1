// `make bench`: segment-endpoint against a bare node:https floor and against fastify, side by side in one
// run, rounds interleaved (A B C D A B C D ...) so that the machine's drift cancels out. See README.md.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { connect } from 'node:tls';
import autocannon from 'autocannon';
import { makeCert } from './cert.mjs';
import { bodies, headers } from './events.mjs';

const HERE = dirname(new URL(import.meta.url).pathname);
const ROOT = join(HERE, '..');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const CONNECTIONS = 50;
const STARTUP_RUNS = 7;
const CPU_RATE = 8000; // events a second, offered to every server alike
const CPU_SECONDS = 4;

const SERVERS = [
  { name: 'floor', label: 'node:https floor', args: ['servers/floor.mjs'] },
  { name: 'fastify', label: 'fastify 5 + auth, settings, Ajv', args: ['servers/fastify.mjs'] },
  { name: 'noop', label: 'segment-endpoint, no-op handlers', args: ['servers/endpoint.mjs', 'noop'] },
  { name: 'durable', label: 'segment-endpoint, durable store', args: ['servers/endpoint.mjs', 'durable'] },
];

const work = mkdtempSync(join(tmpdir(), 'segment-endpoint-bench-'));
const { cert: certFile, key: keyFile } = makeCert(work);
const env = { ...process.env, BENCH_CERT: certFile, BENCH_KEY: keyFile, BENCH_OUT: join(work, 'store') };

function start(server) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, server.args, {
      cwd: HERE,
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    child.stdout.on('data', (chunk) => {
      const port = /ready (\d+)/.exec(chunk.toString())?.[1];
      if (port !== undefined)
        resolve({ ...server, child, port: Number(port), url: `https://127.0.0.1:${port}/` });
    });
    child.on('exit', (code) => reject(new Error(`${server.name} exited (${code}) before it was ready`)));
  });
}

/** VmHWM: the most resident memory the process has held, in MiB. */
function peakRssMiB(pid) {
  const kb = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) / 1024;
}

/** Every event type once, checked to be accepted: a benchmark of refusals would measure nothing. */
async function check(server) {
  for (const body of bodies) {
    const status = await new Promise((resolve, reject) => {
      const req = request(
        server.url,
        {
          method: 'POST',
          headers: { ...headers, 'content-length': Buffer.byteLength(body.replace('[<id>]', 'check')) },
          rejectUnauthorized: false,
        },
        (res) => {
          res.resume();
          resolve(res.statusCode);
        },
      );
      req.on('error', reject);
      req.end(body.replace('[<id>]', 'check'));
    });
    if (status !== 200) throw new Error(`${server.name} answered ${status} to ${body.slice(0, 60)}`);
  }
}

async function withAutocannon(server, seconds) {
  const result = await autocannon({
    url: server.url,
    connections: CONNECTIONS,
    duration: seconds,
    method: 'POST',
    headers,
    idReplacement: true,
    requests: bodies.map((body) => ({ method: 'POST', body })),
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx + result.errors + result.timeouts,
  };
}

// wrk reads its bodies from a Lua script; ids are a run prefix and a counter, unique across rounds.
const wrkScript = join(work, 'events.lua');
writeFileSync(
  wrkScript,
  `local bodies = {${bodies.map((b) => `[==[${b}]==]`).join(',\n')}}
local headers = ${luaTable(headers)}
local n = 0
local prefix = os.getenv("BENCH_RUN") or "r"
request = function()
  n = n + 1
  local body = string.gsub(bodies[n % #bodies + 1], "%[<id>%]", prefix .. "-" .. n)
  return wrk.format("POST", "/", headers, body)
end
`,
);

function luaTable(object) {
  return `{${Object.entries(object)
    .map(([k, v]) => `["${k}"] = "${v}"`)
    .join(', ')}}`;
}

let wrkRuns = 0;
function withWrk(server, seconds) {
  const run = spawnSync(
    'wrk',
    ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-s', wrkScript, server.url],
    {
      env: { ...process.env, BENCH_RUN: `w${Date.now()}-${wrkRuns++}` },
      encoding: 'utf8',
    },
  );
  const out = run.stdout;
  const duration = (text) => {
    const [, value, unit] = /([\d.]+)(us|ms|s)/.exec(text) ?? [];
    return Number(value) * ({ us: 0.001, ms: 1, s: 1000 }[unit] ?? Number.NaN);
  };
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50: duration(/\s50%\s+(\S+)/.exec(out)?.[1] ?? ''),
    p99: duration(/\s99%\s+(\S+)/.exec(out)?.[1] ?? ''),
    non2xx:
      Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) +
      (/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/
        .exec(out)
        ?.slice(1)
        .reduce((a, b) => a + Number(b), 0) ?? 0),
  };
}

/** User + system CPU the process has used so far, in ms (clock ticks of 10 ms). */
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * The server's CPU per event at the same offered load for all (autocannon at a fixed rate, well under
 * every server's limit): what each event costs, free of which side of the loop is saturated.
 */
async function cpuPerEvent(server) {
  const before = cpuMs(server.child.pid);
  const result = await autocannon({
    url: server.url,
    connections: CONNECTIONS,
    duration: CPU_SECONDS,
    overallRate: CPU_RATE,
    method: 'POST',
    headers,
    idReplacement: true,
    requests: bodies.map((body) => ({ method: 'POST', body })),
  });
  return (1000 * (cpuMs(server.child.pid) - before)) / result.requests.total;
}

const hasWrk = spawnSync('wrk', ['--version']).error === undefined;
const clients = [
  { name: 'autocannon', run: withAutocannon },
  ...(hasWrk ? [{ name: 'wrk', run: withWrk }] : []),
];

const median = (values) => {
  const sorted = [...values].filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** Milliseconds from spawning a server to its first accepted TLS connection. */
async function startupMs(args) {
  const port = await freePort();
  const began = performance.now();
  const child = spawn(process.execPath, args(port), {
    cwd: ROOT,
    env: { ...env, BENCH_PORT: String(port) },
    stdio: 'ignore',
  });
  try {
    for (;;) {
      const ok = await new Promise((resolve) => {
        const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
          socket.destroy();
          resolve(true);
        });
        socket.on('error', () => resolve(false));
      });
      if (ok) return performance.now() - began;
      if (performance.now() - began > 10_000) throw new Error(`${args(port).join(' ')} did not start`);
      await new Promise((r) => setTimeout(r, 1));
    }
  } finally {
    child.kill();
  }
}

function freePort() {
  return new Promise((resolve) => {
    const probe = createNetServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

const fmt = (n, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '-');

async function main() {
  const running = [];
  try {
    for (const server of SERVERS) running.push(await start(server));
    for (const server of running) await check(server);
    const rounds = Object.fromEntries(
      clients.map((c) => [c.name, Object.fromEntries(SERVERS.map((s) => [s.name, []]))]),
    );
    for (const client of clients) {
      for (const server of running) await client.run(server, 1); // warm-up: JIT, TLS session caches
      for (let round = 0; round < ROUNDS; round++) {
        for (const server of running) {
          const result = await client.run(server, SECONDS);
          rounds[client.name][server.name].push(result);
          process.stderr.write(
            `${client.name} round ${round + 1}/${ROUNDS} ${server.name.padEnd(8)} ${fmt(result.rps)} req/s p50 ${fmt(result.p50, 2)} ms p99 ${fmt(result.p99, 2)} ms non-2xx ${result.non2xx}\n`,
          );
        }
      }
    }
    const cpu = {};
    for (const server of running) cpu[server.name] = await cpuPerEvent(server);
    const rss = Object.fromEntries(running.map((s) => [s.name, peakRssMiB(s.child.pid)]));
    for (const server of running) server.child.kill();
    running.length = 0;

    const startup = {
      floor: median(await sequence(STARTUP_RUNS, () => startupMs(() => ['bench/servers/floor.mjs']))),
      'segment-endpoint (dist/cli.js)': median(
        await sequence(STARTUP_RUNS, () =>
          startupMs((port) => [
            'dist/cli.js',
            '--cert',
            certFile,
            '--key',
            keyFile,
            '--host',
            '127.0.0.1',
            '--port',
            String(port),
            '--api-key',
            'k',
            '--out',
            join(work, 'startup-store'),
            '--log-level',
            'warn',
          ]),
        ),
      ),
    };

    const summary = summarise(rounds, rss);
    const report = {
      date: new Date().toISOString(),
      machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`,
      rounds: ROUNDS,
      secondsPerRound: SECONDS,
      connections: CONNECTIONS,
      summary,
      startupMs: startup,
      cpuMicrosPerEvent: cpu,
      targets: targets(summary, rss, startup),
      raw: rounds,
    };
    writeFileSync(join(HERE, 'last-run.json'), `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(render(report));
  } finally {
    for (const server of running) server.child.kill();
    rmSync(work, { recursive: true, force: true });
  }
}

async function sequence(times, fn) {
  const out = [];
  for (let i = 0; i < times; i++) out.push(await fn());
  return out;
}

/** Per client and server: medians over rounds, and ratios to the floor taken per round, then the median. */
function summarise(rounds, rss) {
  const summary = {};
  for (const [client, byServer] of Object.entries(rounds)) {
    summary[client] = {};
    const floor = byServer.floor;
    const fastify = byServer.fastify;
    for (const [server, results] of Object.entries(byServer)) {
      summary[client][server] = {
        rps: median(results.map((r) => r.rps)),
        rpsVsFloor: median(results.map((r, i) => r.rps / floor[i].rps)),
        rpsVsFastify: median(results.map((r, i) => r.rps / fastify[i].rps)),
        p50: median(results.map((r) => r.p50)),
        p99: median(results.map((r) => r.p99)),
        p99VsFloor: median(results.map((r, i) => r.p99 / floor[i].p99)),
        non2xx: results.reduce((sum, r) => sum + r.non2xx, 0),
        peakRssMiB: rss[server],
      };
    }
  }
  return summary;
}

function targets(summary, rss, startup) {
  const checks = [];
  for (const [client, s] of Object.entries(summary)) {
    checks.push(
      {
        client,
        target: 'no-op ≥ 0.95 × floor req/s',
        value: s.noop.rpsVsFloor,
        pass: s.noop.rpsVsFloor >= 0.95,
      },
      {
        client,
        target: 'no-op p99 ≤ 1.2 × floor p99',
        value: s.noop.p99VsFloor,
        pass: s.noop.p99VsFloor <= 1.2,
      },
      {
        client,
        target: 'no-op ≥ 1.3 × fastify req/s',
        value: s.noop.rpsVsFastify,
        pass: s.noop.rpsVsFastify >= 1.3,
      },
      {
        client,
        target: 'durable ≥ 0.75 × floor req/s',
        value: s.durable.rpsVsFloor,
        pass: s.durable.rpsVsFloor >= 0.75,
      },
    );
  }
  const overFloor = Math.max(rss.noop, rss.durable) - rss.floor;
  checks.push({
    client: 'all',
    target: 'peak RSS ≤ floor + 15 MiB',
    value: overFloor,
    pass: overFloor <= 15,
  });
  const boot = startup['segment-endpoint (dist/cli.js)'];
  checks.push({
    client: '-',
    target: 'start to first TLS connection ≤ 150 ms',
    value: boot,
    pass: boot <= 150,
  });
  return checks;
}

function render(report) {
  const lines = [
    `segment-endpoint benchmark, ${report.date}`,
    `${report.machine}; ${report.rounds} interleaved rounds of ${report.secondsPerRound} s, ${report.connections} keep-alive connections over TLS, events of every type with Segment's headers`,
    '',
  ];
  for (const [client, byServer] of Object.entries(report.summary)) {
    lines.push(`client: ${client}`, '');
    lines.push(
      '| server | req/s | × floor | × fastify | p50 ms | p99 ms | p99 × floor | peak RSS MiB | non-2xx |',
    );
    lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const server of SERVERS) {
      const s = byServer[server.name];
      lines.push(
        `| ${server.label} | ${fmt(s.rps)} | ${fmt(s.rpsVsFloor, 2)} | ${fmt(s.rpsVsFastify, 2)} | ${fmt(s.p50, 2)} | ${fmt(s.p99, 2)} | ${fmt(s.p99VsFloor, 2)} | ${fmt(s.peakRssMiB, 1)} | ${s.non2xx} |`,
      );
    }
    lines.push('');
  }
  lines.push(
    `start to first accepted TLS connection (median of ${STARTUP_RUNS}): ${Object.entries(report.startupMs)
      .map(([k, v]) => `${k} ${fmt(v, 1)} ms`)
      .join(', ')}`,
  );
  lines.push(
    '',
    `server CPU per event at ${CPU_RATE} events/s (user + system, µs): ${SERVERS.map((s) => `${s.name} ${fmt(report.cpuMicrosPerEvent[s.name], 1)}`).join(', ')}`,
  );
  lines.push('', '| target | client | value | met |', '| --- | --- | ---: | --- |');
  for (const t of report.targets)
    lines.push(`| ${t.target} | ${t.client} | ${fmt(t.value, 2)} | ${t.pass ? 'yes' : 'NO'} |`);
  return `${lines.join('\n')}\n`;
}

await main();
