import { createServer } from 'node:net';

// What the database servers the tests start (postgres.ts, redis.ts) share: a free port, and not
// outliving a test process that ends without cleaning up after itself.

/** A port of 127.0.0.1 free right now: listened on (port 0), then closed for the server to take. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Runs `cleanup` (synchronous: nothing else runs at exit) if the test process exits before the server
 * is destroyed, e.g. after a failed assertion left `after()` unreached. Returns what unregisters it.
 * A process killed by a signal runs no 'exit' listener: its servers are left behind.
 */
export function cleanupOnExit(cleanup: () => void): () => void {
  const onExit = () => {
    try {
      cleanup();
    } catch {
      // exiting anyway: a server that could not be stopped is left behind
    }
  };
  process.once('exit', onExit);
  return () => process.off('exit', onExit);
}

/** The last `lines` lines of a log, to show why a server did not start. */
export function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
