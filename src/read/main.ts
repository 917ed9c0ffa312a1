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
  const letGo = () => {
    for (const signal of READ_SIGNALS) process.off(signal, hold);
  };
  let command: typeof import('./command.ts');
  try {
    command = await import('./command.ts');
  } catch (err) {
    letGo();
    throw err;
  }
  // Let go only once the reader listens (it does before it awaits anything): with no listener at all for
  // a moment, Node would put back a signal's default action (exit 143) and drop one caught meanwhile.
  const read = command.readMain(args, process, early);
  letGo();
  return read;
}
