// The servers' --trace-gc lines (BENCH_TRACE_GC=1), read from their output as make bench runs.

/** --trace-gc's lines, counted: scavenges, full collections and the ms they paused the main thread. */
export function gcCounter() {
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
