import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupOnExit, freePort, tail } from './process.ts';

// A real Redis server of the test's own, on a free port of 127.0.0.1, keeping nothing on disk.
// scripts/install-services.sh installs redis-server.

const READY = /Ready to accept connections/;
/** How long redis-server may take to start: it is ready in milliseconds. */
const START_MS = 10_000;

export interface RedisServer {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Stops the server. It saves nothing: its keys are gone. */
  stop(): Promise<void>;
  /** Starts the server again, on the same port, empty. */
  start(): Promise<void>;
  /** Freezes the server (SIGSTOP): it keeps its connections but answers nothing, as a hung server. */
  pause(): void;
  /** Lets a paused server run again (SIGCONT). */
  resume(): void;
  /** Stops the server at once and removes its directory. Safe to call twice. */
  destroy(): Promise<void>;
}

/** Starts a new redis-server; resolves once it accepts connections. */
export async function startRedis(): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const unregister = cleanupOnExit(() => {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const start = async () => {
    if (child !== undefined) throw new Error('redis-server is running already');
    child = await launch(port, dir);
    child.once('exit', () => {
      child = undefined;
    });
  };
  const stop = async (signal: NodeJS.Signals) => {
    const running = child;
    if (running === undefined) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGCONT'); // a paused server handles no SIGTERM
    running.kill(signal);
    await exited;
  };
  let destroyed = false;
  try {
    await start();
  } catch (err) {
    unregister();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: () => stop('SIGTERM'),
    start,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      unregister();
      await stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Spawns redis-server on `port`; resolves once its log says it is ready, rejects if it exits first. */
function launch(port: number, dir: string): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child = spawn('redis-server', [...args, '--dir', dir], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let ready = false;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`redis-server not ready in ${START_MS} ms`)), START_MS);
    const fail = (err: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${err.message}:\n${tail(output)}`, { cause: err }));
    };
    // Its log is read until it is ready, then drained unread (a full pipe would block the server).
    const onData = (chunk: Buffer) => {
      if (ready) return;
      output += chunk.toString();
      if (!READY.test(output)) return;
      ready = true;
      clearTimeout(timer);
      child.off('exit', onEarlyExit);
      resolve(child);
    };
    const onEarlyExit = (code: number | null) => fail(new Error(`redis-server exited (${code})`));
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (chunk: Buffer) => {
      if (!ready) output += chunk.toString();
    });
    child.once('exit', onEarlyExit);
    child.once('error', (err) => {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      fail(missing ? new Error('no redis-server: run scripts/install-services.sh') : err);
    });
  });
}
