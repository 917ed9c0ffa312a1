// Processes the tests start: the CLI, its flags for plain HTTP, and any command spawned without the
// SEGMENT_* variables of the test's own environment, its output kept.
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

export const ROOT = join(import.meta.dirname, '..');

/** Node's flags to run the sources through tsx, as the tests themselves run: `node <TSX> -e SCRIPT`. */
export const TSX = ['--conditions=segment-endpoint-source', '--import', 'tsx'];

/**
 * The CLI the tests start: `node <CLI> [args]`. The modules `make test` builds for them (test-build/,
 * src/ compiled as tsx compiles it, with source maps, so that coverage counts the lines of src/ they run:
 * scripts/test-build.ts) when no source is newer; otherwise src/cli.ts through tsx, which costs ~0.4 s
 * more CPU at every start, said in one line by each test file's process.
 */
export const CLI = testBuildIsFresh()
  ? [join(ROOT, 'test-build', 'cli.js')]
  : [...TSX, join(ROOT, 'src', 'cli.ts')];

/**
 * Whether test-build/ was built from the sources as they are: its stamp, which bears the time its build
 * began, is no older than any .ts file under src/ but dotfiles (the Makefile's SOURCES, which rebuild it).
 */
function testBuildIsFresh(): boolean {
  const fallBack = (why: string) => {
    process.stderr.write(`# ${why}: the CLI runs from src/ through tsx (make test-build builds it)\n`);
    return false;
  };
  const built = statSync(join(ROOT, 'test-build', 'built'), { throwIfNoEntry: false })?.mtimeMs;
  if (built === undefined) return fallBack('no test-build/built');
  const src = join(ROOT, 'src');
  const newer = readdirSync(src, { recursive: true, encoding: 'utf8' }).find(
    (file) =>
      file.endsWith('.ts') &&
      !basename(file).startsWith('.') &&
      (statSync(join(src, file), { throwIfNoEntry: false })?.mtimeMs ?? 0) > built,
  );
  return newer === undefined || fallBack(`src/${newer} is newer than test-build/`);
}

/** The CLI's flags for plain HTTP on a free port of 127.0.0.1, taking `apiKey` when given. */
export function httpFlags(apiKey?: string): string[] {
  const flags = ['--http', '--host', '127.0.0.1', '--port', '0'];
  return apiKey === undefined ? flags : [...flags, '--api-key', apiKey];
}

export interface Spawned {
  readonly child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  readonly exit: Promise<number | null>;
}

/** The test's own environment without its SEGMENT_* variables, which would configure the endpoint. */
export function cleanEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SEGMENT_')));
  return { ...base, ...env };
}

/** Spawns a process without the SEGMENT_* variables of the test's own environment; keeps its output. */
export function spawnClean(
  command: string,
  args: string[],
  cwd = ROOT,
  env: NodeJS.ProcessEnv = {},
): Spawned {
  return spawnWith(command, args, cwd, cleanEnv(env));
}

/** Spawns a process with exactly `env` as its environment; keeps its output. */
export function spawnWith(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Spawned {
  const child = spawn(command, args, { cwd, env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => {
    stdout += c;
  });
  child.stderr.on('data', (c) => {
    stderr += c;
  });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exit: new Promise((done) => child.on('exit', (code) => done(code))),
  };
}

/** The CLI with `args`, its stdout /dev/full (every write fails: ENOSPC): its exit code and stderr. */
export function runIntoFullDisk(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return runWithStdout(process.execPath, [...CLI, ...args], openSync('/dev/full', 'w'));
}

/** `command args` with its stdout on `fd` (closed here once handed over): its exit code and stderr. */
export async function runWithStdout(
  command: string,
  args: string[],
  fd: number,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(command, args, { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', fd, 'pipe'] });
  closeSync(fd);
  let stderr = '';
  child.stderr?.on('data', (c) => {
    stderr += c;
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, stderr };
}
