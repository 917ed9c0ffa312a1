// `segment-endpoint read`'s entry: the signals that stop it are heard before the reader loads (its
// modules take a while, and a signal's default action would kill it), then handed to it.

/** What stops a reader as Ctrl-C does: the line being written finished, the checkpoint saved, exit 0. */
export const READ_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Loads the reader and runs it; a stop signal that came meanwhile stops it before it prints. */
export async function runRead(args: readonly string[]): Promise<number> {
  let early = false;
  const hold = () => {
    early = true;
  };
  for (const signal of READ_SIGNALS) process.on(signal, hold);
  let command: typeof import('./command.ts');
  try {
    command = await import('./command.ts');
  } finally {
    for (const signal of READ_SIGNALS) process.off(signal, hold);
  }
  // Its own listeners are in place before it awaits anything: no signal falls between.
  return command.readMain(args, process, early);
}
