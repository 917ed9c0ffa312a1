// What the segment-endpoint command's tests share: the CLI run to completion or started and waited for,
// the events its store holds, and parseConfig for a plain-HTTP invocation.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CliConfig, parseConfig } from '../src/config.ts';
import { testCert } from './helpers-cert.ts';
import { CLI, ROOT, spawnClean } from './helpers-spawn.ts';
import { waitFor } from './helpers-wait.ts';

/** The CLI as shipped (`make build`); CLI (helpers-spawn.ts) is the one the tests start. */
export const BUILT = [join(ROOT, 'dist', 'cli.js')];

export interface Running {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  exit: Promise<number | null>;
}

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * A new temporary directory for a describe's tests of the command, with the test certificate and its key
 * written into it; the describe makes it before its tests and removes it after them.
 */
export function commandDir(): { dir: string; certFile: string; keyFile: string } {
  const { cert, key } = testCert();
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-cli-'));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  writeFileSync(certFile, cert);
  writeFileSync(keyFile, key);
  return { dir, certFile, keyFile };
}

// A command expected to end that has not ended by then is killed: a server that started where a refusal
// was expected fails its test with this said, rather than holding the suite until its timeout.
const RUN_BOUND_MS = 60_000; // 60 s

/** Runs the CLI to completion (for --help, bad usage). */
export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}, entry = CLI): Promise<Finished> {
  const run = spawnClean(process.execPath, [...entry, ...args], ROOT, env);
  let killed = false;
  const bound = setTimeout(() => {
    killed = true;
    run.child.kill('SIGKILL');
  }, RUN_BOUND_MS);
  const code = await run.exit;
  clearTimeout(bound);
  const stderr = killed
    ? `${run.stderr()}\n(still running after ${RUN_BOUND_MS / 1000} s: killed)`
    : run.stderr();
  return { code, stdout: run.stdout(), stderr };
}

/** Starts the CLI and waits for its start-up line. */
export async function startCli(args: string[], env: NodeJS.ProcessEnv = {}, entry = CLI): Promise<Running> {
  const run = spawnClean(process.execPath, [...entry, ...args], ROOT, env);
  const started = waitFor(run.stdout, /listening on (\S+)/);
  const exited = run.exit.then((code) => {
    throw new Error(`exited ${code} before listening: ${run.stderr()}`);
  });
  const url = (await Promise.race([started, exited]))[1] as string;
  return { child: run.child, url, stderr: run.stderr, exit: run.exit };
}

/** The records the file store in `dir` holds, its files in name order; none when there is no `dir`. */
export function storedEvents(dir: string): Array<Record<string, unknown>> {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ndjson'))
    .sort()
    .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n'))
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

/** parseConfig for a plain-HTTP invocation (nothing to read from disk), as a config. */
export function configOf(args: string[], env: NodeJS.ProcessEnv = {}): CliConfig {
  const config = parseConfig(['--http', ...args], env);
  assert.equal(typeof config, 'object');
  return config as CliConfig;
}
