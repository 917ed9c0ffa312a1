// From the rounds to the verdict: each server's medians and spreads, the ratios (taken per round, then the
// median and the min–max over rounds), and the targets of issue 10, each met, not met, or with a spread
// that straddles it (then one run's median cannot settle it).

export const median = (values) => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

export function stats(values) {
  const finite = values.filter(Number.isFinite);
  return { median: median(finite), min: Math.min(...finite), max: Math.max(...finite), values };
}

/** Per server: the medians and spreads of what each round measured. */
export function summariseServers(results) {
  const out = {};
  for (const [name, rounds] of Object.entries(results)) {
    const of = (pick) => stats(rounds.map(pick));
    const rps = of((r) => r.rps);
    out[name] = {
      rps: { ...rps, maxOverMin: rps.max / rps.min },
      coldRps: of((r) => r.coldRps),
      p50: of((r) => r.p50),
      p99: of((r) => r.p99),
      peakRssMiB: of((r) => r.rssMiB),
      startMs: of((r) => r.startMs),
      cpuMicrosPerEventAtRate: of((r) => r.fixed.cpuMicrosPerEvent),
      non2xx: rounds.reduce((sum, r) => sum + r.non2xx + r.fixed.non2xx, 0),
      saturation: Object.fromEntries(
        Object.keys(rounds[0].saturation).map((k) => [k, of((r) => r.saturation[k])]),
      ),
      ...(rounds[0].gc
        ? { gc: Object.fromEntries(Object.keys(rounds[0].gc).map((k) => [k, of((r) => r.gc[k])])) }
        : {}),
    };
  }
  return out;
}

const perRound = (results, names, fn) =>
  names.every((n) => results[n])
    ? stats(results[names[0]].map((_, i) => fn(Object.fromEntries(names.map((n) => [n, results[n][i]])))))
    : undefined;

/** Ratios between servers of the same round: each compares runs taken seconds apart. */
export function ratios(results) {
  const rps = (a, b) => perRound(results, [a, b], (r) => r[a].rps / r[b].rps);
  const all = {
    'no-op / fastify req/s': rps('noop', 'fastify'),
    'no-op / parse floor req/s': rps('noop', 'parse'),
    'durable / no-op req/s': rps('durable', 'noop'),
    'parse floor durable / parse floor req/s': rps('parse-durable', 'parse'),
    'durable / parse floor durable req/s': rps('durable', 'parse-durable'),
    'parse floor durable / no-op req/s': rps('parse-durable', 'noop'),
    'no-op / parse floor, answers written together req/s': rps('noop', 'parse-batched'),
    'parse floor, answers written together / parse floor req/s': rps('parse-batched', 'parse'),
    'parse floor, answers written together / fastify req/s': rps('parse-batched', 'fastify'),
    'contract floor, answers written together / fastify req/s': rps('contract-batched', 'fastify'),
    'no-op / contract floor, answers written together req/s': rps('noop', 'contract-batched'),
    'no-op / fastify p99': perRound(results, ['noop', 'fastify'], (r) => r.noop.p99 / r.fastify.p99),
    'no-op / floor req/s': rps('noop', 'floor'),
    'parse floor / floor req/s': rps('parse', 'floor'),
    'fastify / floor req/s': rps('fastify', 'floor'),
    'fastify / parse floor req/s': rps('fastify', 'parse'),
  };
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined));
}

/** The targets of issue 10. `atLeast`: the value must be ≥ the bound (else ≤). */
export function targets(results, servers, ratio) {
  const ours = ['noop', 'durable'].filter((n) => results[n]);
  const list = [
    ['no-op ≥ 1.15 × fastify req/s', ratio['no-op / fastify req/s'], 1.15, true],
    ['no-op ≥ 0.85 × parse floor req/s', ratio['no-op / parse floor req/s'], 0.85, true],
    ['durable ≥ 0.85 × no-op req/s', ratio['durable / no-op req/s'], 0.85, true],
    ['no-op p99 ≤ fastify p99 (ratio ≤ 1)', ratio['no-op / fastify p99'], 1, false],
  ];
  if (servers.noop && servers.fastify) {
    const spread = servers.noop.rps.maxOverMin;
    list.push([
      `no-op req/s spread (max/min) ≤ fastify's (${servers.fastify.rps.maxOverMin.toFixed(2)})`,
      { median: spread, min: spread, max: spread },
      servers.fastify.rps.maxOverMin,
      false,
    ]);
  }
  for (const n of ours) {
    const who = n === 'noop' ? 'no-op' : 'durable';
    if (results.floor) {
      const over = perRound(results, [n, 'floor'], (r) => r[n].rssMiB - r.floor.rssMiB);
      list.push([`${who} peak RSS − floor's ≤ 15 MiB`, over, 15, false]);
    }
    const start = perRound(results, [n], (r) => r[n].startMs);
    // Said when the floor's own start missed the bound: then the run cannot tell what ours' miss is.
    const floor = servers.floor?.startMs.median;
    const note = floor > 150 ? `the floor's own start ${floor.toFixed(0)} ms` : undefined;
    list.push([`${who} start to first TLS connection ≤ 150 ms`, start, 150, false, note]);
  }
  return list
    .filter(([, value]) => value !== undefined)
    .map(([target, value, bound, atLeast, note]) => {
      const ok = (v) => (atLeast ? v >= bound : v <= bound);
      return {
        target,
        median: value.median,
        min: value.min,
        max: value.max,
        met: ok(value.median),
        straddles: ok(value.min) !== ok(value.max),
        ...(note === undefined ? {} : { note }),
      };
    });
}

const SATURATED_PCT = 90;
const fmt = (n, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '-');
const cell = (s, digits = 0) => `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
const verdict = (t) =>
  `${t.met ? 'met' : '**not met**'}${t.straddles ? ', spread straddles it' : ''}${t.note ? ` (${t.note})` : ''}`;

/**
 * The rounds that measured the machine rather than the server: other tenants took a share of it, or the
 * server was not saturated (then wrk, on its core, set the pace: a busy client core caps the fast servers
 * and flatters the slow ones). The durable store is left out of the second: it waits for its disk.
 */
function disturbed(report) {
  const { quietPct, stealPct } = report.config;
  const busy = [];
  const stolen = [];
  const retaken = [];
  const unsaturated = [];
  let waitedMs = 0;
  for (const [name, rounds] of Object.entries(report.rounds)) {
    rounds.forEach((r, i) => {
      const s = r.saturation;
      const round = `${name} round ${i + 1}`;
      waitedMs += r.waitedForQuietMs;
      if (s.othersPct >= quietPct) busy.push(`${round} (${fmt(s.othersPct)}%)`);
      if (s.stealPct >= stealPct) stolen.push(`${round} (${fmt(s.stealPct, 1)}%)`);
      for (const w of r.retaken ?? [])
        retaken.push(
          `${round} (${fmt(w.rps)} req/s at ${fmt(w.stealPct, 1)}% steal, others ${fmt(w.othersPct ?? 0)}%)`,
        );
      if (s.serverCpuPct < SATURATED_PCT) unsaturated.push(`${round} (${fmt(s.serverCpuPct)}%)`);
    });
  }
  return [
    busy.length === 0
      ? `No measured window shared the machine with other tenants using ≥ ${quietPct}% of a core`
      : `**Measured while other tenants used ≥ ${quietPct}% of a core:** ${busy.join(', ')}`,
    ` (waited ${fmt(waitedMs / 1000)} s in all for the machine to be quiet). `,
    retaken.length === 0
      ? `No window was taken again for the hypervisor's steal (≥ ${stealPct}% of a core) or other tenants (≥ ${quietPct}%). `
      : `**Taken again, the hypervisor having stolen ≥ ${stealPct}% of a core or other tenants used ≥ ${quietPct}%:** ${retaken.join(', ')}. `,
    stolen.length === 0 ? '' : `**Kept with ≥ ${stealPct}% stolen (no retake left):** ${stolen.join(', ')}. `,
    unsaturated.length === 0
      ? `Every server was saturated (≥ ${SATURATED_PCT}% of its core) in every round (durable aside: it waits for its disk).`
      : `**Not saturated (server CPU < ${SATURATED_PCT}% of its core: the client set the pace):** ${unsaturated.join(', ')}.`,
  ].join('');
}

export function render(report, labels) {
  const { config, servers, ratios: ratio } = report;
  const names = Object.keys(servers);
  const lines = [
    `**segment-endpoint benchmark, ${report.date}**`,
    '',
    `${report.machine}; ${config.rounds} interleaved rounds (a fresh process per server per round, 1 s cold, ${config.warmupSeconds} s warm-up, then ${config.seconds} s measured), wrk 1 thread, ${config.connections} keep-alive TLS connections, the event mix of events.mjs; ${config.pinned ? 'server on core 0, client on core 1 (taskset)' : 'NOT pinned'}${config.caCertsDropped ? "; the servers started without the runner's NODE_EXTRA_CA_CERTS" : ''}. Cells: median (min–max over rounds); a round's start is the median of ${config.starts ?? 1} launches.`,
    '',
    '| server | req/s | max/min | p50 ms | p99 ms | first second req/s | peak RSS MiB | start ms | non-2xx |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...names.map((n) => {
      const s = servers[n];
      return `| ${labels[n]} | ${cell(s.rps)} | ${fmt(s.rps.maxOverMin, 2)} | ${cell(s.p50, 2)} | ${cell(s.p99, 2)} | ${cell(s.coldRps)} | ${cell(s.peakRssMiB, 1)} | ${cell(s.startMs)} | ${s.non2xx} |`;
    }),
    '',
    'req/s round by round:',
    '',
    ...names.map(
      (n) => `- ${n}: ${servers[n].rps.values.map((v) => `${(v / 1000).toFixed(1)}k`).join(', ')}`,
    ),
    '',
    disturbed(report),
    '',
    `Where the time went under wrk, medians: the server's CPU (all its threads, then its main thread alone) as % of a core, and per event; the main thread's sleeps (its loop idle) per event and preemptions a second; core 0 busy beyond the server (the kernel's network work, other processes); core 1 busy (wrk, the kernel, others); other tenants' CPU (100 = a core: both cores' busy time beyond the server, wrk, this runner and the kernel's threads; under load ~5 of it is interrupt work for the bench, charged to no process). Then server CPU per event at a fixed ${config.fixedRate} events/s (autocannon, ${config.fixedSeconds} s).`,
    '',
    '| server | CPU % | main thread % | µs CPU/event | sleeps/event | preempt/s | core 0 rest % | core 1 % | others % | steal % | µs CPU/event at fixed rate |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...names.map((n) => {
      const s = servers[n].saturation;
      const m = (k, digits = 0) => fmt(s[k].median, digits);
      return `| ${n} | ${m('serverCpuPct')} | ${m('mainThreadPct')} | ${cell(s.cpuMicrosPerEvent, 1)} | ${m('sleepsPerEvent', 3)} | ${m('preemptionsPerSecond')} | ${m('core0OtherPct')} | ${m('core1BusyPct')} | ${m('othersPct')} | ${m('stealPct', 1)} | ${cell(servers[n].cpuMicrosPerEventAtRate, 1)} |`;
    }),
    '',
    '| ratio (per round) | median | min–max |',
    '| --- | ---: | ---: |',
    ...Object.entries(ratio).map(
      ([k, v]) => `| ${k} | ${fmt(v.median, 2)} | ${fmt(v.min, 2)}–${fmt(v.max, 2)} |`,
    ),
    '',
    '| target | median | min–max | verdict |',
    '| --- | ---: | ---: | --- |',
    ...report.targets.map(
      (t) => `| ${t.target} | ${fmt(t.median, 2)} | ${fmt(t.min, 2)}–${fmt(t.max, 2)} | ${verdict(t)} |`,
    ),
  ];
  const gc = names.filter((n) => servers[n].gc);
  if (gc.length > 0) {
    lines.push('', '| server | scavenges/s | mark-compacts/s | GC pause % |', '| --- | ---: | ---: | ---: |');
    for (const n of gc) {
      const g = servers[n].gc;
      lines.push(
        `| ${n} | ${cell(g.scavengesPerSecond)} | ${cell(g.markCompactsPerSecond, 2)} | ${cell(g.pausePct, 1)} |`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
