// `make bench`: segment-endpoint as a partner runs it (dist/cli.js) against the reference servers
// (anchors/), pinned (server on core 0, wrk on core 1), in interleaved rounds with a fresh process per
// server per round, so that neither the machine's drift nor one process's luck decides. See README.md.
// Run with tsx (`node --import tsx`): the PostgreSQL sink's server comes from test/services/postgres.ts.
// env: BENCH_ROUNDS (5), BENCH_SECONDS (5), BENCH_WARMUP (2), BENCH_SERVERS (all: floor,parse,
// parse-batched,fastify,noop,durable,parse-durable,postgres; also async, opt-in), BENCH_PIN=0 (no
// taskset), BENCH_TRACE_GC=1 (count GCs in the measured window),
// BENCH_QUIET_WAIT (10 s a window at most) and BENCH_QUIET_BUDGET (90 s a run), BENCH_STEAL_LIMIT (5 %),
// BENCH_RETAKES (2 a round) and BENCH_RETAKE_BUDGET (60 s a run), BENCH_FIXED_RATE
// (5000 events/s) and BENCH_FIXED_SECONDS (2; 0 skips it), BENCH_JSON (bench/last-run.json),
// BENCH_KEEP_CA_CERTS=1 (the servers keep the runner's NODE_EXTRA_CA_CERTS), BENCH_STARTS (3 launches a
// server a round, their median its start),
// BENCH_BASELINE (another checkout, built: adds noop-, durable-, postgres- and async-baseline, its
// dist/cli.js, for an A/B of two builds in one run: BENCH_SERVERS=durable,durable-baseline).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { makeCert } from './cert.mjs';
import { checkAccepts, cpuAtFixedRate, launch, PIN, pinSelf, runWrk } from './clients.mjs';
import { apiKey } from './events.mjs';
import { wrkScript } from './mklua.mjs';
import { between, othersOver, peakRssMiB, sample } from './proc.mjs';
import { median, ratios, render, summariseServers, targets } from './report.mjs';
import { RUNG_NAMES } from './stages.mjs';

const HERE = dirname(new URL(import.meta.url).pathname);
const ROOT = join(HERE, '..');
const env = (name, fallback) => Number(process.env[name] ?? fallback);
const config = {
  rounds: env('BENCH_ROUNDS', 5),
  seconds: env('BENCH_SECONDS', 5),
  warmupSeconds: env('BENCH_WARMUP', 2), // after the first second; ours takes ~4 s to reach its pace
  connections: 50,
  fixedRate: env('BENCH_FIXED_RATE', 5000), // events a second: under every server's limit, durable's too
  fixedSeconds: env('BENCH_FIXED_SECONDS', 2),
  // A start is one sample of a noisy host (the floor's 117–228 ms over one run's rounds): each round takes
  // the median of this many launches of each server, the measured one last (bench/README.md, "How to
  // read it")
  starts: env('BENCH_STARTS', 3),
  pinned: PIN,
  traceGc: process.env.BENCH_TRACE_GC === '1',
  // other tenants of the machine (tests, builds) take cores from both sides: a measured window waits for
  // them to use under QUIET_PCT of a core, up to quietWaitSeconds, and is flagged if they did not
  quietPct: 15, // under load ~5 % is the kernel's interrupt work for the bench itself, charged to no process
  quietWaitSeconds: env('BENCH_QUIET_WAIT', 10),
  quietBudgetSeconds: env('BENCH_QUIET_BUDGET', 90), // for the whole run
  // the hypervisor takes cores from this VM in bursts (steal): a measured window waits for under
  // stealPct (both cores, % of a core), and one that lost more, or shared the machine with other tenants
  // using quietPct or more, is taken again, up to `retakes` times a round and retakeBudgetSeconds a run,
  // every server alike; the report names each window taken again
  stealPct: env('BENCH_STEAL_LIMIT', 5),
  retakes: env('BENCH_RETAKES', 2),
  retakeBudgetSeconds: env('BENCH_RETAKE_BUDGET', 60),
  // the runner's NODE_EXTRA_CA_CERTS kept from the servers (below, serverEnv)
  caCertsDropped: process.env.NODE_EXTRA_CA_CERTS !== undefined && process.env.BENCH_KEEP_CA_CERTS !== '1',
};
let quietBudgetMs = config.quietBudgetSeconds * 1000;
let retakeBudgetMs = config.retakeBudgetSeconds * 1000;

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
// BENCH_KEEP_CA_CERTS=1 (bench/README.md, "Start, and NODE_EXTRA_CA_CERTS").
const { NODE_EXTRA_CA_CERTS: _, ...inherited } = process.env;
const serverEnv = { ...(config.caCertsDropped ? inherited : process.env), BENCH_CERT: cert, BENCH_KEY: key };

/** --trace-gc's lines, counted: scavenges, full collections and the ms they paused the main thread. */
function gcCounter() {
  const total = { scavenges: 0, markCompacts: 0, pauseMs: 0 };
  let partial = '';
  const feed = (text) => {
    const lines = (partial + text).split('\n');
    partial = lines.pop();
    for (const line of lines) {
      if (/: Scavenge/.test(line)) total.scavenges++;
      else if (/: Mark-Compact/.test(line)) total.markCompacts++;
      else continue;
      total.pauseMs += Number(/MB, ([\d.]+) \//.exec(line)?.[1] ?? 0);
    }
  };
  const since = (before, ms) => ({
    scavengesPerSecond: ((total.scavenges - before.scavenges) * 1000) / ms,
    markCompactsPerSecond: ((total.markCompacts - before.markCompacts) * 1000) / ms,
    pausePct: (100 * (total.pauseMs - before.pauseMs)) / ms,
  });
  return { feed, snapshot: () => ({ ...total }), since };
}

/**
 * Waits while other tenants or the hypervisor take the machine (config.quietPct, config.stealPct);
 * resolves with the ms waited.
 */
async function awaitQuiet(pid) {
  const began = performance.now();
  const limit = Math.min(config.quietWaitSeconds * 1000, Math.max(0, quietBudgetMs));
  for (;;) {
    const { othersPct, stealPct } = await othersOver(250, pid);
    const waited = performance.now() - began - 250;
    if ((othersPct < config.quietPct && stealPct < config.stealPct) || waited >= limit) {
      quietBudgetMs -= waited;
      return waited;
    }
  }
}

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
    if (!disturbed || retaken.length >= config.retakes || retakeBudgetMs <= 0) return window;
    retaken.push({ rps: load.rps, stealPct: saturation.stealPct, othersPct: saturation.othersPct });
    retakeBudgetMs -= after.at - before.at;
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
  if (PIN) {
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
