import type { Logger } from './log.ts';

// What the process itself reports, as log lines (by the logger as it is then: a worker's names it).

/**
 * An exception nothing caught (a partner's handler throwing from a timer) or a promise rejected with
 * nobody to hear it: logged, then the process exits 1. What state it left behind cannot be known; a
 * process manager restarts one that exits non-zero. Events answered were processed to the end; those in
 * flight were never acknowledged, so Segment retries them. A warning (a dependency's: pg's about an
 * `sslmode`, Node's own) is a warning line, in place of Node's plain text among the JSON ones.
 */
export function logProcessEvents(log: () => Logger): void {
  const fatal = (msg: string) => (err: unknown) => {
    log().error({ err, exitCode: 1 }, msg);
    process.exit(1);
  };
  process.on('uncaughtException', fatal('uncaught exception'));
  process.on('unhandledRejection', fatal('unhandled rejection'));
  // A log that can no longer be written (its reader gone: a pipe to a log shipper that died) loses its
  // lines, not the process: EPIPE on stdout or stderr was an uncaught exception at the next line.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', ignore);
  process.removeAllListeners('warning');
  // Silenced as Node's own printer is silenced.
  if (process.env.NODE_NO_WARNINGS === '1' || process.execArgv.includes('--no-warnings')) return;
  process.on('warning', (warning: Error & { code?: string }) => {
    log().warn({ warning: warning.name, code: warning.code }, warning.message);
  });
}

const ignore = (): void => {};
