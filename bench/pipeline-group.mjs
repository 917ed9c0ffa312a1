#!/usr/bin/env node
// One group of the socket-free pipeline benchmark (pipeline.mjs), in a process of its own: the bench's
// events through request handlers driven by light-my-request's `inject` (fastify's `inject` is the same
// library). Only the group's handlers are built: a handler that is merely loaded (a second fastify
// instance, a ladder rung) already changes what Node's and fastify's shared functions have seen, and so
// what the others cost.
//
//   node bench/pipeline-group.mjs GROUP ROUNDS N   (prints {names, runs, gcRuns} as JSON)
//   node bench/pipeline-group.mjs --serve NAME [plain]  (one handler and the bare one, measured on request)
//
// With --serve, the process holds one handler beside the bare one, and measures a slice of either when
// asked on stdin (a line of JSON, `[NAME, COUNT]`, answered on fd 3 with one, `{name, ns, gc}`):
// pipeline.mjs --separate (pipeline-separate.mjs) runs such processes for each handler and takes their
// slices in turn, so that each handler runs alone in its process, and all see the same stretches of the
// host.
import { writeSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import inject from 'light-my-request';
import { plainInject } from './plain-inject.mjs';
import { GROUPS, SLICE } from './stages.mjs';

const [group, second, third] = process.argv.slice(2);
const SERVE = group === '--serve';
const HANDLERS = new Set(Object.values(GROUPS).flatMap((each) => each.names));
if (SERVE && !HANDLERS.has(second))
  throw new Error(`--serve takes a handler's name: one of ${[...HANDLERS].join(', ')}`);
const NAMES = SERVE ? ['bare', second] : GROUPS[group]?.names;
if (NAMES === undefined) throw new Error(`unknown group ${group}: one of ${Object.keys(GROUPS).join(', ')}`);
const ROUNDS = Number(second);
const N = Number(third);
// The `control` group's handlers, and --serve's with `plain` after the name, go through plain-inject.mjs
// instead (the fastify app by its `routing`, the handler its `inject` hands light-my-request).
const PLAIN = (SERVE ? third : GROUPS[group].injector) === 'plain';
const send = (target, options) => {
  if (PLAIN) return plainInject(target.app?.routing ?? target.dispatch, options);
  return target.app ? target.app.inject(options) : inject(target.dispatch, options);
};

const dist = new URL('../dist/', import.meta.url);
const load = (name) => import(new URL(name, dist).href);
const EVENTS = process.env.BENCH_EVENTS ?? './events.mjs';
const { apiKey: API_KEY, events, headers } = await import(new URL(EVENTS, import.meta.url).href);
// Loaded by the handlers that use it only: a module merely loaded takes its place in the heap all the same.
const ours = () => load('index.js');

const noop = () => {};
const handlers = Object.fromEntries(
  ['identify', 'track', 'page', 'screen', 'group', 'alias', 'delete'].map((t) => [t, noop]),
);

// The fastify anchor of ../shared/bench/inject.mjs: an onRequest auth hook, the settings header decoded,
// the body validated by the Ajv validator of its type (anchors/schemas.mjs, as the anchor under wrk).
async function fastifyAnchor() {
  const [{ default: Fastify }, { validators }] = await Promise.all([
    import('fastify'),
    import('./anchors/schemas.mjs'),
  ]);
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
  return { app };
}

// segment-endpoint as a fastify plugin (dist/fastify.js), through fastify.inject().
async function fastifyPlugin() {
  const [{ default: Fastify }, { default: segmentEndpoint }, { silentLogger }] = await Promise.all([
    import('fastify'),
    load('fastify.js'),
    ours(),
  ]);
  const app = Fastify({ logger: false });
  app.register(segmentEndpoint, { apiKeys: [API_KEY], handlers, log: silentLogger });
  await app.ready();
  return { app };
}

// The parse floor (anchors/raw-json.mjs) as a plain handler: the auth header compared, the settings
// header decoded, the body parsed, its type looked up, then 200. Every event the bench sends passes.
const AUTH = headers.authorization;
const TYPES = new Set(['identify', 'track', 'page', 'screen', 'group', 'alias']);
const parseFloor = (req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const authorised = req.headers.authorization === AUTH;
    JSON.parse(Buffer.from(req.headers['x-segment-settings'] || 'e30=', 'base64').toString());
    const known = TYPES.has(JSON.parse(Buffer.concat(chunks).toString()).type);
    res.writeHead(authorised && known ? 200 : 400, { 'content-length': '0' }).end();
  });
};

const bare = (req, res) => {
  req.on('data', noop);
  req.on('end', () => res.writeHead(200, { 'content-length': '0' }).end());
};

async function build(name) {
  if (name === 'ours, baseline') {
    const other = await import(new URL('dist/index.js', `file://${process.env.BENCH_BASELINE}/`).href);
    return { dispatch: other.createHandler({ apiKeys: [API_KEY], handlers, log: other.silentLogger }) };
  }
  const { createFetchHandler, createHandler, silentLogger } = name.startsWith('ours') ? await ours() : {};
  if (name === 'bare') return { dispatch: bare };
  if (name === 'parse floor') return { dispatch: parseFloor };
  if (name === 'contract floor' || name === 'contract floor + filter') {
    const { contractFloor } = await import('./contract-floor.mjs');
    return { dispatch: contractFloor(API_KEY, handlers, { filter: name.endsWith('filter') }) };
  }
  if (name === 'fastify') return fastifyAnchor();
  if (name === 'ours')
    return { dispatch: createHandler({ apiKeys: [API_KEY], handlers, log: silentLogger }) };
  if (name === 'ours + metrics') {
    const metricsPath = '/metrics';
    return { dispatch: createHandler({ apiKeys: [API_KEY], handlers, log: silentLogger, metricsPath }) };
  }
  if (name === 'ours, fastify plugin') return fastifyPlugin();
  // Not through the injector: a Request in, a Response out. Its net counts Request and Response in
  // place of the injector's request and response.
  if (name === 'ours, fetch handler') {
    return { fetch: createFetchHandler({ apiKeys: [API_KEY], handlers, log: silentLogger }) };
  }
  const { rung, RUNG_NAMES } = await import('./ladder.mjs');
  return { dispatch: rung(RUNG_NAMES.indexOf(name), API_KEY) };
}

const targets = {};
for (const name of NAMES) targets[name] = await build(name);

// One parsed copy of each bench event, alive for the whole run: an event's hidden class lives only while
// an object has it, and through light-my-request a full collection comes every few hundred events, each
// clearing every inline cache that had seen the class (ours' and fastify's validators then ran
// unoptimised for whole runs, or not, by chance: HISTORY.md, "Validators that never reached optimised
// code"). These copies keep the classes alive, as traffic does in a server.
const shapes = events.map((event) => JSON.parse(JSON.stringify({ ...event, messageId: 'shape' })));

let id = 0;
const request = (i) => ({
  method: 'POST',
  url: '/',
  headers: { ...headers, host: 'localhost' },
  // A unique messageId each: a repeated one would be answered by the duplicate filter, a cheaper path.
  payload: JSON.stringify({ ...events[i % events.length], messageId: `p${process.pid}-${id++}` }),
});

// The garbage collector's pauses, in ms, as reported: through light-my-request most of each slice is its
// own garbage being collected (HISTORY.md, "The injector's own garbage"), so each is also given without.
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
    const res = await send(target, request(i));
    if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${res.payload}`);
  }
  const ns = Number(process.hrtime.bigint() - started) / n;
  await delivered();
  return { ns, gc: ((gcMs - gcBefore) * 1e6) / n };
}

// Warm-up: every path compiled. A process serving one handler warms longer (about a second more): after
// 3,000 events, the first slices of 8 such processes of ours took 16–18 µs of net, their later ones
// 11–13, all 8 alike (the warm-up, or the host's pace then: not told apart).
const WARM_UP = SERVE ? 10_000 : 3000;
for (const name of NAMES) await measure(targets[name], WARM_UP);
if (SERVE) await serve();
else process.stdout.write(JSON.stringify({ names: NAMES, ...(await rounds()), shapes: shapes.length }));

/**
 * ROUNDS rounds of N events each handler. The host's own pace drifts by tens of percent over seconds
 * (HISTORY.md, Run-to-run spread), more than the differences measured here: a round measures every target in
 * slices of SLICE events taken in turn, so that all see the same stretches of the host, and the
 * per-round nets compare like with like. A slice is long enough (~0.15 s) for its target's code and data
 * to be warm, as in a server that runs one of them; much shorter slices measure every target cold, which
 * favours the smaller code. Each round starts one target further on. No collection is forced between
 * rounds: a forced full collection made the rounds after it swing, fastify's more than ours (HISTORY.md,
 * "What the harness measured wrong until 2026-12-01").
 */
async function rounds() {
  const runs = Object.fromEntries(NAMES.map((name) => [name, []]));
  const gcRuns = Object.fromEntries(NAMES.map((name) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    const total = Object.fromEntries(NAMES.map((name) => [name, 0]));
    const gc = Object.fromEntries(NAMES.map((name) => [name, 0]));
    for (let done = 0; done < N; done += SLICE) {
      for (let i = 0; i < NAMES.length; i++) {
        const name = NAMES[(i + round) % NAMES.length];
        const slice = await measure(targets[name], SLICE);
        total[name] += slice.ns;
        gc[name] += slice.gc;
      }
    }
    const slices = Math.ceil(N / SLICE);
    for (const name of NAMES) {
      runs[name].push(total[name] / slices);
      gcRuns[name].push(gc[name] / slices);
    }
  }
  return { runs, gcRuns };
}

/**
 * --serve: slices measured as asked on stdin, each answered on fd 3 (pipeline-separate.mjs) with the
 * name it measured, until stdin ends.
 */
async function serve() {
  const answer = (line) => writeSync(3, `${line}\n`);
  answer('ready');
  for await (const line of createInterface({ input: process.stdin })) {
    const [name, count] = JSON.parse(line);
    answer(JSON.stringify({ name, ...(await measure(targets[name], Number(count))) }));
  }
}
