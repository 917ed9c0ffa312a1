// Secrets kept in files (--api-keys-file, --signature-secret-file) are safe from other users of the host
// only while the file's mode keeps them out: a file written under the default umask (0644) is readable by
// every user, which is what keeping the secrets out of the command line (ps) was for. Said at start, and of
// the keys file at each SIGHUP that reads it (keys-reload.ts).

/**
 * A warning for each of `files` (its flag and path) that every user of this host may read, by the mode
 * its read showed (`modes`, by path): the path may name another file since. One not read here (a
 * worker's, sent by its primary) is not judged.
 */
export function readableByOthers(
  files: ReadonlyArray<readonly [flag: string, path: string]>,
  modes: ReadonlyMap<string, number>,
): string[] {
  const warnings: string[] = [];
  for (const [flag, path] of files) {
    const mode = modes.get(path);
    const warning = mode === undefined ? undefined : readableWarning(flag, path, mode);
    if (warning !== undefined) warnings.push(warning);
  }
  return warnings;
}

/** The warning for a file of secrets of this `mode`, if every user of this host may read it. */
export function readableWarning(flag: string, path: string, mode: number): string | undefined {
  if ((mode & 0o004) === 0) return undefined;
  return `${flag} ${path} is readable by every user of this host (mode ${modeText(mode)}): it holds secrets; chmod 600 it`;
}

/** A file's permission bits as `ls` and `chmod` write them: `0644`. */
export const modeText = (mode: number): string => (mode & 0o777).toString(8).padStart(4, '0');
