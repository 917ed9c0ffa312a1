// `make bench`: segment-endpoint as a partner runs it (dist/cli.js) against the reference servers
// (anchors/), pinned (server on core 0, wrk on core 1), in interleaved rounds with a fresh process per
// server per round, so that neither the machine's drift nor one process's luck decides. See README.md.
// Run with tsx (`node --import tsx`): the PostgreSQL sink's server comes from test/services/postgres.ts.
// Its settings (BENCH_ROUNDS, BENCH_SERVERS, BENCH_BASELINE, ...) are listed in config.mjs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { makeCert } from './cert.mjs';
import { checkAccepts, cpuAtFixedRate, launch, pinSelf, runWrk } from './clients.mjs';
import { awaitQuiet, budget, config } from './config.mjs';
import { apiKey } from './events.mjs';
import { wrkScript } from './mklua.mjs';
import { between, peakRssMiB, sample } from './proc.mjs';
import { median, ratios, render, summariseServers, targets } from './report.mjs';
import { RUNG_NAMES } from './stages.mjs';
import { gcCounter } from './trace-gc.mjs';

const HERE = dirname(new URL(import.meta.url).pathname);
const ROOT = join(HERE, '..');

const work = mkdtempSync(join(tmpdir(), 'segment-endpoint-bench-'));
const { cert, key } = makeCert(work);
const cli = (port, ...rest) => [
  'dist/cli.js',
  ...['--cert', cert, '--key', key, '--host', '127.0.0.1', '--port', String(port), '--api-key', apiKey],
  ...rest,
];
const SERVERS = {
  floor: { label: 'node:https floor (anchors/raw.mjs)', args: () => ['bench/anchors/raw.mjs'] },
  parse: { label: 'parse floor (anchors/raw-json.mjs)', args: () => ['bench/anchors/raw-json.mjs'] },
  'parse-batched': {
    label: 'parse floor, answers written together (anchors/raw-json-batched.mjs)',
    args: () => ['bench/anchors/raw-json-batched.mjs'],
  },
  'contract-batched': {
    label: 'contract floor + filter, answers written together (anchors/contract-batched.mjs)',
    args: () => ['bench/anchors/contract-batched.mjs'],
  },
  fastify: {
    label: 'fastify 5 + auth, settings, Ajv (anchors/fastify.mjs)',
    args: () => ['bench/anchors/fastify.mjs'],
  },
  noop: {
    label: 'segment-endpoint --handlers noop-handlers.mjs',
    args: (port) => cli(port, '--handlers', join(HERE, 'noop-handlers.mjs')),
  },
  durable: {
    label: 'segment-endpoint --out (default store)',
    args: (port, store) => cli(port, '--out', store),
  },
  'parse-durable': {
    label: 'parse floor + a group-committed file (anchors/raw-durable.mjs)',
    args: (_port, store) => ['bench/anchors/raw-durable.mjs', store],
  },
  postgres: {
    label: 'segment-endpoint --postgres (PostgreSQL sink)',
    // its database server's CPU counts among other tenants': no window is taken again for it
    othersOwn: true,
    // a table a round, created by the endpoint at start as in production
    args: (port, store) =>
      cli(port, '--postgres', postgres.url, '--postgres-table', `bench_${basename(store).replace('-', '_')}`),
  },
};
const MAIN = Object.keys(SERVERS);
// Not in MAIN (BENCH_SERVERS=noop,async): the no-op handlers written as async functions.
SERVERS.async = {
  label: 'segment-endpoint --handlers async-noop-handlers.mjs',
  args: (port) => cli(port, '--handlers', join(HERE, 'async-noop-handlers.mjs')),
};
const baseline = process.env.BENCH_BASELINE;
if (baseline !== undefined) {
  const theirs = (args) => [join(baseline, 'dist/cli.js'), ...args.slice(1)];
  for (const name of ['noop', 'durable', 'postgres', 'async']) {
    const { label, args, othersOwn } = SERVERS[name];
    SERVERS[`${name}-baseline`] = {
      label: `${label}, ${baseline}`,
      args: (...a) => theirs(args(...a)),
      othersOwn,
    };
  }
}
// The ablation ladder under wrk (`make bench-ladder`): rung0 reads the body, each next one adds a stage.
for (const [depth, label] of RUNG_NAMES.entries()) {
  SERVERS[`rung${depth}`] = { label, args: () => ['bench/ladder-server.mjs', String(depth)] };
}
const names = (process.env.BENCH_SERVERS ?? MAIN.join(',')).split(',');
for (const name of names) if (!SERVERS[name]) throw new Error(`BENCH_SERVERS: no server "${name}"`);

const script = join(work, 'events.lua');
writeFileSync(script, wrkScript());
// NODE_EXTRA_CA_CERTS (set on this machine for its npm registry) makes node build its whole store of root
// certificates as it starts, before any script: 15-35 ms of every server's start here, the floor's alike,
// for a store only a TLS client reads. A server's own environment needs none of it: not passed on, unless
// BENCH_KEEP_CA_CERTS=1 (bench/HISTORY.md, "Start, and NODE_EXTRA_CA_CERTS").
const { NODE_EXTRA_CA_CERTS: _, ...inherited } = process.env;
const serverEnv = { ...(config.caCertsDropped ? inherited : process.env), BENCH_CERT: cert, BENCH_KEY: key };

/**
 * The measured window of a warm server: wrk for config.seconds once the machine is quiet, taken again
 * (config.retakes) when the hypervisor stole more than config.stealPct of it, or other tenants used
 * config.quietPct of a core or more during it (unless `othersOwn`: the server's own database counts
 * among them). `retaken` keeps each window set aside, its req/s, steal and other tenants' share.
 */
async function measuredWindow(server, wrkOptions, gc, othersOwn) {
  const retaken = [];
  let waitedForQuietMs = 0;
  for (;;) {
    waitedForQuietMs += await awaitQuiet(server.pid);
    const before = sample(server.pid);
    const gcBefore = gc?.snapshot();
    const load = await runWrk(server.url, { ...wrkOptions, seconds: config.seconds });
    const after = sample(server.pid);
    const saturation = between(before, after, load.requests);
    const window = {
      ...load,
      waitedForQuietMs,
      saturation,
      retaken,
      ...(gc ? { gc: gc.since(gcBefore, after.at - before.at) } : {}),
    };
    const busy = !othersOwn && saturation.othersPct >= config.quietPct;
    const disturbed = saturation.stealPct >= config.stealPct || busy;
    if (!disturbed || retaken.length >= config.retakes || budget.retakeMs <= 0) return window;
    retaken.push({ rps: load.rps, stealPct: saturation.stealPct, othersPct: saturation.othersPct });
    budget.retakeMs -= after.at - before.at;
  }
}

/** One server, one round: start it, check it, warm it, load it, measure it at a fixed rate, stop it. */
async function measure(name, round) {
  const gc = config.traceGc ? gcCounter() : undefined;
  const store = join(work, `store-${round}`);
  const starts = await startsOnly(name, round);
  const server = await launch((port) => SERVERS[name].args(port, store), {
    cwd: ROOT,
    env: serverEnv,
    nodeArgs: gc ? ['--trace-gc'] : [],
    onStdout: gc?.feed,
  });
  const wrkOptions = { connections: config.connections, script };
  try {
    await checkAccepts(server.url);
    // the first second from a cold start, reported apart; then the JIT's warm-up, not measured
    const cold = await runWrk(server.url, { ...wrkOptions, seconds: 1 });
    if (config.warmupSeconds > 0) await runWrk(server.url, { ...wrkOptions, seconds: config.warmupSeconds });
    const window = await measuredWindow(server, wrkOptions, gc, SERVERS[name].othersOwn === true);
    const fixed =
      config.fixedSeconds > 0
        ? await cpuAtFixedRate(server.url, server.pid, {
            seconds: config.fixedSeconds,
            connections: config.connections,
            rate: config.fixedRate,
          })
        : { cpuMicrosPerEvent: Number.NaN, non2xx: 0 };
    starts.push(server.startMs);
    const startMs = median(starts);
    return { ...window, coldRps: cold.rps, startMs, startsMs: starts, rssMiB: peakRssMiB(server.pid), fixed };
  } finally {
    await server.stop();
    rmSync(store, { recursive: true, force: true });
  }
}

/**
 * The start of `name` taken config.starts − 1 more times before its measured launch, each with a store of
 * its own (PostgreSQL's, a table each, once: its start is not a target).
 */
async function startsOnly(name, round) {
  const starts = [];
  const more = SERVERS[name].othersOwn === true ? 0 : config.starts - 1;
  for (let i = 0; i < more; i++) {
    const store = join(work, `store-${round}-start-${i}`);
    const server = await launch((port) => SERVERS[name].args(port, store), { cwd: ROOT, env: serverEnv });
    starts.push(server.startMs);
    await server.stop();
    rmSync(store, { recursive: true, force: true });
  }
  return starts;
}

const fmt = (n, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '-');

/**
 * The PostgreSQL server of the postgres rounds: a throwaway cluster (test/services/postgres.ts), pinned
 * with wrk to core 1, so that core 0 is the endpoint's alone as for the other servers.
 */
async function startPostgresServer() {
  const { startPostgres } = await import('../test/services/postgres.ts');
  const server = await startPostgres();
  if (config.pinned) {
    const postmaster = execFileSync('pgrep', ['-f', '--', `-p ${server.port} `])
      .toString()
      .trim()
      .split('\n');
    for (const pid of postmaster) execFileSync('taskset', ['-a', '-p', '-c', '1', pid], { stdio: 'ignore' });
  }
  return server;
}

let postgres;

async function main() {
  pinSelf();
  if (names.includes('postgres')) postgres = await startPostgresServer();
  const results = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < config.rounds; round++) {
    // each round starts one server further on: no server always follows the same one
    const order = names.map((_, i) => names[(i + round) % names.length]);
    for (const name of order) {
      const r = await measure(name, round);
      results[name].push(r);
      const s = r.saturation;
      process.stderr.write(
        `round ${round + 1}/${config.rounds} ${name.padEnd(8)} ${fmt(r.rps).padStart(6)} req/s p50 ${fmt(r.p50, 2)} p99 ${fmt(r.p99, 2)} ms | ${fmt(s.cpuMicrosPerEvent, 1)} µs/ev (${fmt(r.fixed.cpuMicrosPerEvent, 1)} at ${config.fixedRate}/s) ${fmt(s.syscallsPerEvent, 2)} sys/ev ${fmt(s.sleepsPerEvent, 3)} sleeps/ev ${fmt(s.preemptionsPerSecond)} preempt/s cpu ${fmt(s.serverCpuPct)}% (main ${fmt(s.mainThreadPct)}%) core0 rest ${fmt(s.core0OtherPct)}% core1 ${fmt(s.core1BusyPct)}% others ${fmt(s.othersPct)}% steal ${fmt(s.stealPct, 1)}%${r.gc ? ` gc ${fmt(r.gc.scavengesPerSecond)}/s ${fmt(r.gc.pausePct, 1)}%` : ''} | start ${fmt(r.startMs)} ms rss ${fmt(r.rssMiB, 1)} MiB non-2xx ${r.non2xx + r.fixed.non2xx}${r.retaken.map((w) => ` | taken again: ${fmt(w.rps)} req/s at ${fmt(w.stealPct, 1)}% steal, others ${fmt(w.othersPct ?? 0)}%`).join('')}\n`,
      );
    }
  }
  const servers = summariseServers(results);
  const ratio = ratios(results);
  const report = {
    date: new Date().toISOString(),
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Linux ${release()}, node ${process.version}`,
    config,
    servers,
    ratios: ratio,
    targets: targets(results, servers, ratio),
    rounds: results,
  };
  // three decimals are more than any figure here means; `make bench` then formats the file as biome does
  const rounded = (_, v) => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 1000) / 1000 : v);
  writeFileSync(
    process.env.BENCH_JSON ?? join(HERE, 'last-run.json'),
    `${JSON.stringify(report, rounded, 2)}\n`,
  );
  process.stdout.write(render(report, Object.fromEntries(names.map((n) => [n, SERVERS[n].label]))));
}

try {
  await main();
} finally {
  await postgres?.destroy();
  rmSync(work, { recursive: true, force: true });
}
