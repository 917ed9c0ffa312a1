// Shared tools of the reliability suite: the real process (the CLI the tests start, coverage counting it),
// its peak memory, a bounded load generator, and where the figures of a run are kept.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, get, request } from 'node:https';
import { join } from 'node:path';
import { segmentHeaders } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { CLI, cleanEnv } from '../helpers-spawn.ts';

export const ROOT = join(import.meta.dirname, '..', '..');

export interface Endpoint {
  readonly child: ChildProcess;
  readonly url: string;
  readonly port: number;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  readonly exit: Promise<number | null>;
  /** Peak resident memory of the process so far, in bytes (VmHWM), or undefined once it has exited. */
  peakRss(): number | undefined;
}

/** Writes the test certificate into `dir` and returns the flags that use it. */
export function tlsFlags(dir: string): string[] {
  const { cert, key } = testCert();
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'cert.pem'), cert);
  writeFileSync(join(dir, 'key.pem'), key);
  return [
    '--cert',
    join(dir, 'cert.pem'),
    '--key',
    join(dir, 'key.pem'),
    '--host',
    '127.0.0.1',
    '--port',
    '0',
  ];
}

/** Starts `segment-endpoint` with `args` and resolves once it prints its URL; `spawned` gets the process at once. */
export function startEndpoint(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  spawned?: (child: ChildProcess) => void,
): Promise<Endpoint> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...CLI, ...args], {
      cwd: ROOT,
      env: cleanEnv(env),
    });
    spawned?.(child);
    let output = '';
    const exit = new Promise<number | null>((done) =>
      child.on('exit', (code, signal) => done(code ?? (signal ? -1 : null))),
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on (\S+)/.exec(output);
      if (match?.[1] !== undefined) {
        child.stdout?.off('data', onData);
        child.stdout?.on('data', (c: Buffer) => {
          output += c.toString();
        });
        const url = match[1];
        resolve({
          child,
          url,
          port: Number(new URL(url).port),
          output: () => output,
          exit,
          peakRss: () => peakRss(child.pid),
        });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (c: Buffer) => {
      output += c.toString();
    });
    exit.then((code) => reject(new Error(`segment-endpoint exited (${code}) before listening:\n${output}`)));
  });
}

/** VmHWM of a Linux process: the most resident memory it has held. */
export function peakRss(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

export interface Outcome {
  readonly id: string;
  /** HTTP status, or 0 when the request failed without an answer (reset, refused). */
  readonly status: number;
  readonly error?: string;
  readonly sentAt: number;
  readonly doneAt: number;
}

export interface LoadOptions {
  readonly url: string;
  readonly connections: number;
  /** Stop after this many requests in all, or when `until` resolves, whichever is first. */
  readonly maxRequests: number;
  readonly until?: Promise<unknown>;
  readonly event: (n: number) => { messageId: string };
  readonly key?: string;
  /** Called with each answer as it comes, for a test that waits on one. */
  readonly onAnswer?: (answer: Answer) => void;
}

/** Every record in a store directory's NDJSON files; lines that do not parse are counted, not thrown. */
export function readStore(dir: string): {
  records: Array<{ event: { messageId?: string } }>;
  broken: number;
} {
  const records: Array<{ event: { messageId?: string } }> = [];
  let broken = 0;
  if (!existsSync(dir)) return { records, broken };
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith('.ndjson')) continue;
    for (const line of readFileSync(join(dir, name), 'utf8').split('\n')) {
      if (line === '') continue;
      try {
        records.push(JSON.parse(line));
      } catch {
        broken++;
      }
    }
  }
  return { records, broken };
}

const FIGURES = join(ROOT, '.reliability', 'last-run.json');

/** Records figures of this run (merged by name into .reliability/last-run.json) for the README. */
export function recordFigures(name: string, figures: Record<string, unknown>): void {
  mkdirSync(join(ROOT, '.reliability'), { recursive: true });
  let all: Record<string, unknown> = {};
  try {
    all = JSON.parse(readFileSync(FIGURES, 'utf8'));
  } catch {
    // first figures of this run
  }
  all[name] = { ...figures, at: new Date().toISOString() };
  writeFileSync(FIGURES, `${JSON.stringify(all, null, 2)}\n`);
}

export const MiB = 1024 * 1024;

/** An outcome with what the answer said: the error `code` of its JSON body and the headers that matter. */
export interface Answer extends Outcome {
  readonly code?: string | undefined;
  readonly retryAfter?: string | undefined;
  readonly connection?: string | undefined;
}

/**
 * One event over HTTPS through `agent` (with `headers` besides Segment's), its answer read: status, error
 * `code`, the headers that matter. With `held`, the body's last byte waits for `held.lastByte`, and
 * `held.written()` is called once the rest is written.
 * Never rejects: a network failure, or no answer within 30 s, is status 0.
 */
export function send(
  agent: Agent,
  url: string,
  event: { messageId: string },
  key = 'dev-key',
  headers: Readonly<Record<string, string>> = {},
  held?: { readonly lastByte: Promise<unknown>; written(): void },
): Promise<Answer> {
  const body = Buffer.from(JSON.stringify(event));
  const sentAt = Date.now();
  const failed = (err: Error): Answer => ({
    id: event.messageId,
    status: 0,
    error: (err as NodeJS.ErrnoException).code ?? err.message,
    sentAt,
    doneAt: Date.now(),
  });
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        servername: 'localhost',
        headers: { ...segmentHeaders(key), ...headers, 'content-length': String(body.length) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let code: string | undefined;
          try {
            code = (JSON.parse(Buffer.concat(chunks).toString()) as { code?: string }).code;
          } catch {
            // an empty success body
          }
          resolve({
            id: event.messageId,
            status: res.statusCode ?? 0,
            code,
            retryAfter: res.headers['retry-after'],
            connection: res.headers.connection,
            sentAt,
            doneAt: Date.now(),
          });
        });
        res.on('error', (err) => resolve(failed(err)));
      },
    );
    req.on('error', (err) => resolve(failed(err)));
    // Unanswered this long: given up, as Segment gives up after ~5 s. A connection the primary of
    // --workers handed to a worker killed at that moment is never answered, and held the test for good.
    req.setTimeout(SEND_TIMEOUT_MS, () => req.destroy(new Error('no answer within 30 s')));
    if (held === undefined) req.end(body);
    else {
      req.write(body.subarray(0, -1), () => held.written());
      void held.lastByte.then(() => req.end(body.subarray(-1)));
    }
  });
}

const SEND_TIMEOUT_MS = 30_000;

/**
 * Keeps `connections` keep-alive connections busy, each sending one event after another. Bounded in
 * count and time; resolves with every answer.
 */
export async function load(options: LoadOptions): Promise<Answer[]> {
  const { cert } = testCert();
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections, ca: cert });
  const answers: Answer[] = [];
  let next = 0;
  let stop = false;
  options.until?.then(() => {
    stop = true;
  });
  const worker = async () => {
    while (!stop && next < options.maxRequests) {
      const n = next++;
      const answer = await send(agent, options.url, options.event(n), options.key);
      answers.push(answer);
      options.onAnswer?.(answer);
    }
  };
  await Promise.all(Array.from({ length: options.connections }, worker));
  agent.destroy();
  return answers;
}

/**
 * GET /health on its own connection: the status, or 0 without an answer. An answer also proves the
 * process is past start-up (its event loop is turning), not merely that it printed its URL.
 */
export function health(ep: Endpoint): Promise<number> {
  const agent = new Agent({ keepAlive: false, ca: testCert().cert });
  return new Promise((resolve) => {
    const req = request(
      new URL('/health', ep.url),
      { method: 'GET', agent, servername: 'localhost' },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(0));
      },
    );
    req.on('error', () => resolve(0));
    req.end();
  }).finally(() => agent.destroy()) as Promise<number>;
}

/** GET `path` on a connection of its own (with workers, round-robin picks the worker): status and body. */
export function fetchText(ep: Endpoint, path: string): Promise<{ status: number; body: string }> {
  const agent = new Agent({ keepAlive: false, ca: testCert().cert });
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    get(new URL(path, ep.url), { agent, servername: 'localhost' }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  }).finally(() => agent.destroy());
}

/**
 * A clean stop: serving first (an answer to /health, not merely the start-up line: a SIGTERM right after
 * that line can beat the signal handler), then SIGTERM and exit code 0.
 */
export async function stopCleanly(ep: Endpoint): Promise<void> {
  assert.equal(await health(ep), 200);
  ep.child.kill('SIGTERM');
  assert.equal(await ep.exit, 0, ep.output());
}

/** Kills whatever is still running and removes the directory, whatever the test's outcome. */
export function cleanup(dir: string, endpoints: Endpoint[]): () => Promise<void> {
  return async () => {
    for (const ep of endpoints) {
      if (ep.child.exitCode === null && ep.child.signalCode === null) {
        ep.child.kill('SIGKILL');
        await ep.exit;
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
}
