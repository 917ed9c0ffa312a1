#!/usr/bin/env node
// The socket-free pipeline benchmark: the bench's events through request handlers driven by
// light-my-request's `inject` (fastify's `inject` is the same library). No kernel, no TLS, no scheduler:
// what the code we own costs per event. Each group of handlers runs in a process of its own
// (pipeline-group.mjs), with its rounds interleaved; most of each figure is the garbage collector's
// pauses, for the injector's own garbage: each is also given without them.
//
//   taskset -c 0 node bench/pipeline.mjs [--rounds 7] [--n 10000] [--json FILE] [--group NAME]
//                                        [--separate [--processes 4]]
//
// --separate puts each handler of a group in processes of its own (--processes of each, every one with a
// bare handler beside it: pipeline-separate.mjs), alone as in a partner's server, with their slices taken
// in turn as in one process: a check that sharing a process (Node's request and response streams, its
// event emitter) does not decide a group's figures.
//
// Groups (stages.mjs): `target`, the comparison as ../shared/bench/inject.mjs makes it (a bare
// handler that reads the body and answers 200, the injector's own cost; the fastify anchor; segment-
// endpoint as shipped, dist/ with no-op handlers); `limit`, the parse floor and the contract floor
// against the same fastify app (the least any handler that reads the event costs, and the least one
// that does what the contract asks, contract-floor.mjs); `ladder`, the pipeline's stages composed one
// on top of the other from the shipped modules (each rung's cost above the one below is what that stage
// costs); `control`, `target`'s and `limit`'s handlers through plain-inject.mjs, an injector whose
// garbage dies young where light-my-request's does not (HISTORY.md, "The injector's own garbage");
// `variants`, ours with metrics, as a fastify plugin and as a fetch handler; with BENCH_BASELINE (another
// checkout, built), `ab`, this build's handler against that one's.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { GROUPS } from './stages.mjs';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at === -1 ? fallback : args[at + 1];
};
const ROUNDS = Number(option('rounds', 7));
const N = Number(option('n', 10_000));
const JSON_FILE = option('json', '');
const GROUP_ONLY = option('group', '');
const TARGET = 0.6;

const SEPARATE = args.includes('--separate');
const PROCESSES = Number(option('processes', 4));
if (!Number.isInteger(PROCESSES) || PROCESSES < 1) {
  console.error(
    `--processes takes a whole number of processes a handler, 1 or more: not ${option('processes')}`,
  );
  process.exit(1);
}
const child = new URL('./pipeline-group.mjs', import.meta.url).pathname;
/** The middle value; of an even count, the mean of the two middle values. */
const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const half = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[half] : (sorted[half - 1] + sorted[half]) / 2;
};

/** One group measured in a fresh process (the CPU affinity this one was given passes on). */
function measureGroup(group) {
  const out = execFileSync(process.execPath, [child, group, String(ROUNDS), String(N)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(out);
}

/**
 * A group's rows: each handler's ns an event, its net of the injector (above the bare handler of the same
 * round) and that net against the reference's, round by round; then the same without the collector's
 * pauses.
 */
function rowsOf({ names, runs, gcRuns, processes }, reference) {
  const net = (name) => runs[name].map((ns, round) => ns - runs.bare[round]);
  const mutator = (name) => runs[name].map((ns, round) => ns - gcRuns[name][round]);
  const netMutator = (name) => mutator(name).map((ns, round) => ns - mutator('bare')[round]);
  const per = (xs, ys) => xs.map((x, round) => x / ys[round]);
  const rows = {};
  let below = 0;
  for (const name of names) {
    const nets = net(name);
    const ratios = per(nets, net(reference));
    const row = {
      ns: median(runs[name]),
      gc: median(gcRuns[name]),
      net: median(nets),
      netMin: Math.min(...nets),
      netMax: Math.max(...nets),
      ratio: median(ratios),
      ratioMin: Math.min(...ratios),
      ratioMax: Math.max(...ratios),
      mutatorNet: median(netMutator(name)),
      mutatorRatio: median(per(netMutator(name), netMutator(reference))),
      rounds: runs[name],
      gcRounds: gcRuns[name],
      processes: processes?.[name],
    };
    if (name.startsWith('ladder')) {
      row.step = row.net - below;
      below = row.net;
    }
    rows[name] = row;
  }
  return rows;
}

function print(group, rows, reference) {
  const x = `× ${reference}`;
  const where = SEPARATE ? 'each handler in a process of its own' : 'one process';
  console.log(`\n${group}: ns per event, median of ${ROUNDS} interleaved rounds of ${N} (${where})`);
  console.log(
    `| handler | ns/event | of it in GC pauses | net of the injector | range of net | net ${x} | range | without GC: net | ${x} |`,
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const r = Math.round;
  for (const [name, row] of Object.entries(rows)) {
    const step = row.step === undefined ? '' : ` (step ${r(row.step)})`;
    const ratio = (v) => (name === 'bare' ? '' : v.toFixed(2));
    const range =
      name === 'bare' || name === reference ? '' : `${ratio(row.ratioMin)}–${ratio(row.ratioMax)}`;
    console.log(
      `| ${name} | ${r(row.ns)} | ${r(row.gc)} | ${r(row.net)}${step} | ${r(row.netMin)}–${r(row.netMax)} | ${ratio(row.ratio)} | ${range} | ${r(row.mutatorNet)} | ${ratio(row.mutatorRatio)} |`,
    );
  }
  const ref = rows[reference]?.processes;
  if (ref === undefined) return;
  console.log(
    `\n${group}, each handler's net over the whole run in each of its processes (its own bare handler's taken off):`,
  );
  for (const [name, { processes }] of Object.entries(rows)) {
    if (processes === undefined) continue;
    for (const key of ['net', 'mutatorNet']) {
      const mid = median(processes.map((p) => p[key]));
      const each = processes.map((p) => r(p[key])).join(', ');
      const times = name === reference ? '' : `, ${(mid / median(ref.map((p) => p[key]))).toFixed(2)} ${x}`;
      console.log(`- ${name}, ${key === 'net' ? 'net' : 'without GC'}: ${each} (median ${r(mid)}${times})`);
    }
  }
}

console.log('pipeline, without sockets: each group in a process of its own');
const result = {};
for (const [group, { reference, only }] of Object.entries(GROUPS)) {
  if (only !== undefined && !process.env[only]) continue;
  if (GROUP_ONLY && group !== GROUP_ONLY) continue;
  const measured = SEPARATE
    ? await (await import('./pipeline-separate.mjs')).measureSeparately(group, {
        rounds: ROUNDS,
        n: N,
        processes: PROCESSES,
      })
    : measureGroup(group);
  const rows = rowsOf(measured, reference);
  print(group, rows, reference);
  result[group] = rows;
}
if (result.target === undefined || result.limit === undefined) {
  if (JSON_FILE) writeFileSync(JSON_FILE, JSON.stringify(result, null, 2));
  process.exit(0);
}
const { ratio, ratioMin, ratioMax } = result.target.ours;
const straddles = ratioMin <= TARGET && ratioMax > TARGET;
const verdict = `${ratio <= TARGET ? 'met' : 'not met'}${straddles ? ', spread straddles it' : ''}`;
const range = (row) => `${row.ratio.toFixed(2)} (${row.ratioMin.toFixed(2)}–${row.ratioMax.toFixed(2)})`;
console.log(`\ntarget: ours net ≤ ${TARGET} × fastify net: ${range(result.target.ours)} (${verdict})`);
console.log(
  `the least a handler that reads the event costs (the parse floor): ${range(result.limit['parse floor'])} × fastify net`,
);
console.log(
  `the least one doing the contract's work costs (the contract floor): ${range(result.limit['contract floor'])} × fastify net`,
);
console.log(
  `the same with a duplicate filter, as ours has: ${range(result.limit['contract floor + filter'])} × fastify net`,
);
const { control } = result;
if (control !== undefined) {
  console.log(
    `through the control injector (plain-inject.mjs), × fastify net: ours ${range(control.ours)}; the parse floor ${range(control['parse floor'])}, the contract floor ${range(control['contract floor'])}, with a duplicate filter ${range(control['contract floor + filter'])}`,
  );
}
if (JSON_FILE) writeFileSync(JSON_FILE, JSON.stringify(result, null, 2));
