// The event mix for wrk, as a Lua script: cycles through events.mjs's events with Segment's headers, and
// gives every request a fresh messageId (the run's tag from $BENCH_RUN, then a counter), so that the
// duplicate filter never answers in place of the work being measured. `node bench/mklua.mjs > wrk.lua`
// writes it for running wrk by hand; bench/run.mjs writes its own copy for each run.
import { fileURLToPath } from 'node:url';
import { events, headers } from './events.mjs';

export function wrkScript() {
  const q = (s) => JSON.stringify(s);
  const parts = events.map((e) => JSON.stringify({ ...e, messageId: '@@ID@@' }).split('@@ID@@'));
  const lines = [
    `local pre = {\n${parts.map((p) => `  ${q(p[0])}`).join(',\n')}\n}`,
    `local post = {\n${parts.map((p) => `  ${q(p[1])}`).join(',\n')}\n}`,
    'local i = 0',
    'local n = 0',
    'local tag = os.getenv("BENCH_RUN") or tostring(os.time())',
    'wrk.method = "POST"',
    ...Object.entries(headers).map(([k, v]) => `wrk.headers[${q(k)}] = ${q(v)}`),
    'request = function()',
    '  i = i % #pre + 1',
    '  n = n + 1',
    '  return wrk.format(nil, wrk.path, nil, pre[i] .. tag .. "-" .. n .. post[i])',
    'end',
    // Latency percentiles in ms; "status" counts answers that were not 2xx or 3xx.
    'done = function(summary, latency, requests)',
    '  local e = summary.errors',
    '  io.write(string.format("RESULT rps=%.1f p50=%.3f p99=%.3f requests=%d status=%d errors=%d\\n",',
    '    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,',
    '    summary.requests, e.status, e.connect + e.read + e.write + e.timeout))',
    'end',
  ];
  return `${lines.join('\n')}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(wrkScript());
