// How `make bench` (run.mjs) is set, from the environment, and how it waits for a quiet machine before
// each measured window. See README.md, "How the numbers are taken".
// env: BENCH_ROUNDS (5), BENCH_SECONDS (5), BENCH_WARMUP (2), BENCH_SERVERS (all: floor,parse,
// parse-batched,contract-batched,fastify,noop,durable,parse-durable,postgres; also async, opt-in),
// BENCH_PIN=0 (no taskset), BENCH_TRACE_GC=1 (count GCs in the measured window),
// BENCH_QUIET_WAIT (10 s a window at most) and BENCH_QUIET_BUDGET (90 s a run), BENCH_STEAL_LIMIT (5 %),
// BENCH_RETAKES (2 a round) and BENCH_RETAKE_BUDGET (60 s a run), BENCH_FIXED_RATE
// (5000 events/s) and BENCH_FIXED_SECONDS (2; 0 skips it), BENCH_JSON (bench/last-run.json),
// BENCH_KEEP_CA_CERTS=1 (the servers keep the runner's NODE_EXTRA_CA_CERTS), BENCH_STARTS (3 launches a
// server a round, their median its start),
// BENCH_BASELINE (another checkout, built: adds noop-, durable-, postgres- and async-baseline, its
// dist/cli.js, for an A/B of two builds in one run: BENCH_SERVERS=durable,durable-baseline).
import { PIN } from './clients.mjs';
import { othersOver } from './proc.mjs';

const env = (name, fallback) => Number(process.env[name] ?? fallback);
export const config = {
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
  // the runner's NODE_EXTRA_CA_CERTS kept from the servers (run.mjs, serverEnv)
  caCertsDropped: process.env.NODE_EXTRA_CA_CERTS !== undefined && process.env.BENCH_KEEP_CA_CERTS !== '1',
};
/** What is left of the run's budgets, in ms: waiting for quiet, and windows taken again. */
export const budget = {
  quietMs: config.quietBudgetSeconds * 1000,
  retakeMs: config.retakeBudgetSeconds * 1000,
};

/**
 * Waits while other tenants or the hypervisor take the machine (config.quietPct, config.stealPct);
 * resolves with the ms waited.
 */
export async function awaitQuiet(pid) {
  const began = performance.now();
  const limit = Math.min(config.quietWaitSeconds * 1000, Math.max(0, budget.quietMs));
  for (;;) {
    const { othersPct, stealPct } = await othersOver(250, pid);
    const waited = performance.now() - began - 250;
    if ((othersPct < config.quietPct && stealPct < config.stealPct) || waited >= limit) {
      budget.quietMs -= waited;
      return waited;
    }
  }
}
