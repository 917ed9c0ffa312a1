// What the --workers tests share: a temp directory with the flags of a 2-worker run, and the workers'
// start-up lines read back from the log.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trackEvent } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { waitUntil } from '../helpers-wait.ts';
import { cleanup, type Endpoint, send, startEndpoint, tlsFlags } from './harness.ts';

// Only bounds a process that never does what is awaited.
export const GUARD_MS = 15_000;
/** The same for five worker starts in a row: on a loaded host one start took 2.5–4 s. */
export const FIVE_STARTS_MS = 5 * GUARD_MS;

/** A temp directory, removed after the test with whatever still runs, and the flags of a 2-worker run. */
export function setUp(t: { after(fn: () => Promise<void>): void }, name: string) {
  const dir = mkdtempSync(join(tmpdir(), `segment-endpoint-cluster-${name}-`));
  const endpoints: Endpoint[] = [];
  t.after(cleanup(dir, endpoints));
  const flags = ['--workers', '2', ...tlsFlags(dir), '--api-key', 'dev-key'];
  const start = async (extra: string[], env: NodeJS.ProcessEnv = {}) => {
    const ep = await startEndpoint([...flags, ...extra], env);
    endpoints.push(ep);
    return ep;
  };
  return { dir, out: join(dir, 'store'), flags, start };
}

/** The JSON log's lines in `output`, a line still being written left out. */
function logEntries(output: string): Array<{ msg?: string; worker?: number; [field: string]: unknown }> {
  const lines = output.split('\n').slice(0, -1);
  return lines.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
}

/** The pids worker `n` logged `worker listening` with, in order. */
export function listeningPids(output: string, n: number): number[] {
  const entries = logEntries(output);
  return entries.filter((e) => e.msg === 'worker listening' && e.worker === n).map((e) => e.pid as number);
}

/**
 * The event requests of all workers as the primary last kept them from their reports (the debug line
 * `worker counts kept`): what /metrics still sums if they are killed outright now.
 */
export function keptRequests(output: string): number {
  const kept = new Map<number, number>();
  for (const e of logEntries(output))
    if (e.msg === 'worker counts kept') kept.set(e.worker as number, e.requests as number);
  let sum = 0;
  for (const n of kept.values()) sum += n;
  return sum;
}

/** The statuses of `n` events, each on a connection of its own: round robin hands them to every worker. */
export async function freshStatuses(
  t: { after(fn: () => void): void },
  ep: Endpoint,
  n: number,
): Promise<Array<number | string>> {
  const agent = new Agent({ keepAlive: false, ca: testCert().cert });
  t.after(() => agent.destroy());
  const answers = await Promise.all(Array.from({ length: n }, () => send(agent, ep.url, trackEvent())));
  return answers.map((a) => (a.status === 0 ? `${a.error}` : a.status));
}

/**
 * The fields of the JSON log's `listening` line (the start-up line, for a log shipper): it comes on
 * stderr, perhaps after the start-up line on stdout.
 */
export async function listeningLogged(ep: Endpoint): Promise<Record<string, unknown>> {
  const said = () => {
    const lines = ep
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'));
    return lines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((e) => e.msg === 'listening');
  };
  await waitUntil(
    () => said() !== undefined,
    () => `"listening" in the log:\n${ep.output()}`,
    GUARD_MS,
  );
  return said() ?? {};
}

/**
 * SIGTERM to `ep` once its replacements are loading, then the word (`fail-now` in `dir`) that has them
 * fail: the drain still exits 0 (a worker that never listened held no event).
 */
export async function drainThenFail(ep: Endpoint, dir: string): Promise<void> {
  ep.child.kill('SIGTERM');
  await waitUntil(
    () => /"msg":"draining every worker"/.test(ep.output()),
    () => `the drain begun, in:\n${ep.output()}`,
    GUARD_MS,
  );
  writeFileSync(join(dir, 'fail-now'), '');
  assert.equal(await ep.exit, 0, ep.output());
}

/** Kills worker `n`'s first process with SIGKILL; resolves once its replacement listens. */
export async function killedAndReplaced(ep: Endpoint, n: number): Promise<void> {
  const [pid] = listeningPids(ep.output(), n);
  assert.ok(pid !== undefined, ep.output());
  process.kill(pid, 'SIGKILL');
  await waitUntil(
    () => listeningPids(ep.output(), n).length === 2 || ep.child.exitCode !== null,
    () => `worker ${n} replaced, in:\n${ep.output()}`,
    GUARD_MS,
  );
  assert.equal(ep.child.exitCode, null, `the primary stopped:\n${ep.output()}`);
}

/** A handlers module whose worker 2 runs `worker2` (statements) at import; the others load it and serve. */
export function handlersModule(dir: string, worker2: string): string {
  const module = join(dir, 'handlers.mjs');
  writeFileSync(
    module,
    [
      `import { existsSync, writeFileSync } from 'node:fs';`,
      `if (process.env.SEGMENT_ENDPOINT_WORKER === '2') {\n${worker2}\n}`,
      'export default { track() {} };',
      '',
    ].join('\n'),
  );
  return module;
}
