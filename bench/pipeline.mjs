#!/usr/bin/env node
// The socket-free pipeline benchmark: the bench's events through request handlers driven by
// light-my-request's `inject` (fastify's `inject` is the same library), in one process. No kernel, no TLS,
// no scheduler: what the code we own costs per event. Rounds are interleaved. Most of each figure is the
// garbage collector's pauses, for the injector's own garbage: each is also given without them.
//
//   node --expose-gc bench/pipeline.mjs [--rounds 7] [--n 10000] [--json FILE]
//
// Targets: a bare handler (reads the body, answers 200: the injector's own cost), the fastify anchor (auth
// hook, settings decode, Ajv per type: what a partner would otherwise write), segment-endpoint as shipped
// (dist/, no-op handlers) and the ablation ladder: the pipeline's stages composed one on top of the other
// from the shipped modules, so that each rung's cost above the one below is what that stage costs.
import { writeFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { Ajv } from 'ajv';
import Fastify from 'fastify';
import inject from 'light-my-request';

const dist = new URL('../dist/', import.meta.url);
const load = (name) => import(new URL(name, dist).href);
const EVENTS = process.env.BENCH_EVENTS ?? './events.mjs';
const { apiKey: API_KEY, events, headers } = await import(new URL(EVENTS, import.meta.url).href);
const [{ createFetchHandler, createHandler, silentLogger }, { schemas }] = await Promise.all(
  ['index.js', 'generated/validators.js'].map(load),
);
const { rung, RUNG_NAMES } = await import('./ladder.mjs');

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at === -1 ? fallback : args[at + 1];
};
const ROUNDS = Number(option('rounds', 7));
const N = Number(option('n', 10_000));
const JSON_FILE = option('json', '');

const noop = () => {};
const handlers = Object.fromEntries(
  ['identify', 'track', 'page', 'screen', 'group', 'alias', 'delete'].map((t) => [t, noop]),
);

// The fastify anchor, as ../shared/bench/inject.mjs builds it: an onRequest auth hook, the settings header
// decoded, the body validated by the Ajv validator of its type.
const ajv = new Ajv({ allowUnionTypes: true });
const validators = Object.fromEntries(Object.entries(schemas).map(([t, s]) => [t, ajv.compile(s)]));
const app = Fastify({ logger: false });
app.addHook('onRequest', async (req, reply) => {
  if (req.headers.authorization !== headers.authorization) {
    return reply.code(401).send({ message: 'Invalid API key' });
  }
});
app.post('/', async (req, reply) => {
  try {
    JSON.parse(Buffer.from(req.headers['x-segment-settings'] || 'e30=', 'base64').toString());
  } catch {
    return reply.code(400).send({ message: 'bad settings' });
  }
  const event = req.body;
  const validate = validators[event?.type];
  if (!validate) return reply.code(501).send({ message: 'unsupported type' });
  if (!validate(event)) return reply.code(400).send({ message: validate.errors[0].message });
  return reply.code(200).send();
});
await app.ready();

// segment-endpoint as a fastify plugin (dist/fastify.js), through the same fastify.inject().
const { default: segmentEndpoint } = await load('fastify.js');
const plugin = Fastify({ logger: false });
plugin.register(segmentEndpoint, { apiKeys: [API_KEY], handlers, log: silentLogger });
await plugin.ready();

const bare = (req, res) => {
  req.on('data', noop);
  req.on('end', () => res.writeHead(200, { 'content-length': '0' }).end());
};

const targets = {
  bare: { dispatch: bare },
  fastify: { app },
  ...Object.fromEntries(RUNG_NAMES.map((name, depth) => [name, { dispatch: rung(depth, API_KEY) }])),
  ours: { dispatch: createHandler({ apiKeys: [API_KEY], handlers, log: silentLogger }) },
  'ours + metrics': {
    dispatch: createHandler({ apiKeys: [API_KEY], handlers, log: silentLogger, metricsPath: '/metrics' }),
  },
  'ours, fastify plugin': { app: plugin },
  // Not through the injector: a Request in, a Response out. Its net counts Request and Response in
  // place of the injector's request and response.
  'ours, fetch handler': { fetch: createFetchHandler({ apiKeys: [API_KEY], handlers, log: silentLogger }) },
};

let id = 0;
const request = (i) => ({
  method: 'POST',
  url: '/',
  headers: { ...headers, host: 'localhost' },
  // A unique messageId each: a repeated one would be answered by the duplicate filter, a cheaper path.
  payload: JSON.stringify({ ...events[i % events.length], messageId: `p${process.pid}-${id++}` }),
});

// The garbage collector's pauses, in ms, as they are reported: most of each slice here is the injector's
// own garbage being collected (README.md, "Why it swings"), so each figure is also given without them.
let gcMs = 0;
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) gcMs += entry.duration;
}).observe({ entryTypes: ['gc'] });

// A collection's entry reaches the observer two turns of the event loop after it (Node queues the entry,
// then its delivery, each with an Immediate): a slice of promises alone (the fetch handler's) would leave
// its collections to the next slice. Each slice waits for them, outside its timing.
const delivered = async () => {
  for (let turn = 0; turn < 2; turn++) await new Promise((resolve) => setImmediate(resolve));
};

/** A target's ns per event over `n` events, and the garbage collector's share of them. */
async function measure(target, n) {
  await delivered();
  const gcBefore = gcMs;
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    if (target.fetch) {
      const { method, headers: sent, payload } = request(i);
      const res = await target.fetch(
        new Request('https://localhost/', { method, headers: sent, body: payload }),
      );
      if (res.status !== 200) throw new Error(`${res.status} ${await res.text()}`);
      continue;
    }
    const res = target.app ? await target.app.inject(request(i)) : await inject(target.dispatch, request(i));
    if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${res.payload}`);
  }
  const ns = Number(process.hrtime.bigint() - started) / n;
  await delivered();
  return { ns, gc: ((gcMs - gcBefore) * 1e6) / n };
}

const names = Object.keys(targets);
for (const name of names) await measure(targets[name], 3000); // warm-up: every path compiled
const runs = Object.fromEntries(names.map((name) => [name, []]));
const gcRuns = Object.fromEntries(names.map((name) => [name, []]));
// The host's own pace drifts by tens of percent over seconds (README, Run-to-run spread), more than the
// differences measured here: a round measures every target in slices of SLICE events taken in turn, so
// that all see the same stretches of the host, and the per-round nets compare like with like. A slice is
// long enough (~0.15 s) for its target's code and data to be warm, as in a server that runs one of them;
// much shorter slices measure every target cold, which favours the smaller code. Each round starts from
// a collected heap (with --expose-gc) and one target further on.
const SLICE = 2_500;
const collect = globalThis.gc ?? (() => {});
for (let round = 0; round < ROUNDS; round++) {
  collect();
  const total = Object.fromEntries(names.map((name) => [name, 0]));
  const gc = Object.fromEntries(names.map((name) => [name, 0]));
  for (let done = 0; done < N; done += SLICE) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + round) % names.length];
      const slice = await measure(targets[name], SLICE);
      total[name] += slice.ns;
      gc[name] += slice.gc;
    }
  }
  const slices = Math.ceil(N / SLICE);
  for (const name of names) {
    runs[name].push(total[name] / slices);
    gcRuns[name].push(gc[name] / slices);
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
// Net of the injector: above what the bare handler costs in the same round; then the same without the
// garbage collector's pauses.
const net = (name) => runs[name].map((ns, round) => ns - runs.bare[round]);
const ratioToFastify = (name) => net(name).map((ns, round) => ns / net('fastify')[round]);
const mutator = (name) => runs[name].map((ns, round) => ns - gcRuns[name][round]);
const netMutator = (name) => mutator(name).map((ns, round) => ns - mutator('bare')[round]);
const mutatorToFastify = (name) => netMutator(name).map((ns, round) => ns / netMutator('fastify')[round]);
console.log(`pipeline, one process, ns per event: median of ${ROUNDS} interleaved rounds of ${N}`);
console.log(
  '| handler | ns/event | of it in GC pauses | net of the injector | range of net | net × fastify | without GC: net | × fastify |',
);
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
let below = 0;
const result = {};
for (const name of names) {
  const nets = net(name);
  const row = {
    ns: median(runs[name]),
    net: median(nets),
    netMin: Math.min(...nets),
    netMax: Math.max(...nets),
    xFastify: median(ratioToFastify(name)),
    gc: median(gcRuns[name]),
    mutatorNet: median(netMutator(name)),
    mutatorXFastify: median(mutatorToFastify(name)),
    step: name.startsWith('ladder') ? median(nets) - below : undefined,
  };
  if (name.startsWith('ladder')) below = row.net;
  result[name] = { ...row, rounds: runs[name], gcRounds: gcRuns[name] };
  const step = row.step === undefined ? '' : ` (step ${Math.round(row.step)})`;
  const ratio = (x) => (name === 'bare' ? '' : x.toFixed(2));
  console.log(
    `| ${name} | ${Math.round(row.ns)} | ${Math.round(row.gc)} | ${Math.round(row.net)}${step} | ${Math.round(row.netMin)}–${Math.round(row.netMax)} | ${ratio(row.xFastify)} | ${Math.round(row.mutatorNet)} | ${ratio(row.mutatorXFastify)} |`,
  );
}
const target = result.ours.xFastify <= 0.6 ? 'met' : 'not met';
console.log(`\ntarget: ours net ≤ 0.6 × fastify net: ${result.ours.xFastify.toFixed(2)} (${target})`);
if (JSON_FILE) writeFileSync(JSON_FILE, JSON.stringify(result, null, 2));
