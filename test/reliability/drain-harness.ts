// What the SIGTERM drain tests share: the process's "draining" log line and the events in flight it
// names, and its exit code, awaited no longer than a guard against a process that never exits.
import { waitUntil } from '../helpers-wait.ts';
import type { Endpoint } from './harness.ts';

// Only bounds a process that never exits. A drain ends after its events (150 ms here) or its
// --shutdown-timeout (1 s in the quick tests) and a 1 s linger for half-sent requests; 30 s is far
// past both, yet short of the 65 s keep-alive timeout that would free a connection a drain wrongly
// waited on.
export const GUARD_MS = 30_000;

/** The `inFlight` of the process's `draining` log line. */
export function inFlightAtSignal(output: string): number | undefined {
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg?: string; inFlight?: number };
    if (entry.msg === 'draining') return entry.inFlight;
  }
  return undefined;
}

/** Waits for the process to log that it is draining. */
export function untilDraining(ep: Endpoint): Promise<void> {
  return waitUntil(
    () => inFlightAtSignal(ep.output()) !== undefined,
    () => `the "draining" line in:\n${ep.output()}`,
    GUARD_MS,
  );
}

/** The exit code, or 'hung' (after which the process is killed) if it has not exited within the guard. */
export async function exitCode(ep: Endpoint): Promise<number | null | 'hung'> {
  let guard: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((done) => {
    guard = setTimeout(done, GUARD_MS, 'hung');
  });
  const code = await Promise.race([ep.exit, hung]);
  clearTimeout(guard);
  if (code === 'hung') {
    ep.child.kill('SIGKILL');
    await ep.exit;
  }
  return code;
}
