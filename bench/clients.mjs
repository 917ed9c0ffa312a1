// Starting a server pinned to its core, and the clients that load it: wrk (the load run, pinned to the
// other core), autocannon at a fixed rate (CPU per event at the same offered load for every server), and a
// check that every event type is accepted before anything is measured.
import { spawn, spawnSync } from 'node:child_process';
import { request } from 'node:https';
import { createServer as createNetServer } from 'node:net';
import { connect } from 'node:tls';
import autocannon from 'autocannon';
import { events, headers } from './events.mjs';
import { cpuMs } from './proc.mjs';

export const PIN = process.env.BENCH_PIN !== '0';
const SERVER_CORE = '0';
const CLIENT_CORE = '1';
const pinned = (core, command, args) => (PIN ? ['taskset', ['-c', core, command, ...args]] : [command, args]);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function freePort() {
  return new Promise((resolve) => {
    const probe = createNetServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Starts `node ...argsFor(port)` on the server core (taskset execs node: the pid is node's) and resolves once a TLS
 * handshake succeeds, with the ms from spawn to then. `onStdout` sees its output (--trace-gc lines).
 */
export async function launch(argsFor, { cwd, env, nodeArgs = [], onStdout }) {
  const port = await freePort();
  const args = argsFor(port);
  const began = performance.now();
  const [command, argv] = pinned(SERVER_CORE, process.execPath, [...nodeArgs, ...args]);
  const child = spawn(command, argv, { cwd, env: { ...env, PORT: String(port) }, stdio: 'pipe' });
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  child.stdout.on('data', (chunk) => onStdout?.(chunk.toString()));
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  for (;;) {
    if (await tlsAccepts(port)) break;
    if (exited || performance.now() - began > 20_000) {
      child.kill('SIGKILL');
      throw new Error(`${args.join(' ')} did not start: ${stderr}`);
    }
    await sleep(1);
  }
  const startMs = performance.now() - began;
  const stop = () =>
    new Promise((resolve) => {
      if (exited) return resolve();
      child.once('exit', resolve);
      child.kill('SIGKILL');
    });
  return { pid: child.pid, port, url: `https://127.0.0.1:${port}/`, startMs, stop };
}

function tlsAccepts(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** Every event type once, answered 200: a benchmark of refusals would measure nothing. */
export async function checkAccepts(url) {
  for (const event of events) {
    const body = JSON.stringify({ ...event, messageId: `check-${process.pid}-${event.type}` });
    const status = await new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'POST',
          headers: { ...headers, 'content-length': Buffer.byteLength(body) },
          rejectUnauthorized: false,
        },
        (res) => {
          res.resume();
          resolve(res.statusCode);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    if (status !== 200) throw new Error(`${url} answered ${status} to a ${event.type}`);
  }
}

let wrkRuns = 0;

/** wrk, 1 thread, `connections` keep-alive TLS connections, on the client core. */
export function runWrk(url, { seconds, connections, script }) {
  const [command, argv] = pinned(CLIENT_CORE, 'wrk', [
    '-t1',
    `-c${connections}`,
    `-d${seconds}s`,
    '-s',
    script,
    url,
  ]);
  const tag = `w${process.pid}-${Date.now()}-${wrkRuns++}`;
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { env: { ...process.env, BENCH_RUN: tag } });
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    child.on('error', reject);
    child.on('close', () => {
      const m = /RESULT rps=([\d.]+) p50=([\d.]+) p99=([\d.]+) requests=(\d+) status=(\d+) errors=(\d+)/.exec(
        out,
      );
      if (!m) return reject(new Error(`wrk said: ${out}`));
      const [rps, p50, p99, requests, status, errors] = m.slice(1).map(Number);
      resolve({ rps, p50, p99, requests, non2xx: status + errors });
    });
  });
}

/**
 * The server's CPU per event with autocannon offering `rate` events a second (from this process, on the
 * client core): measured from 1 s in, once the connections' TLS handshakes are done, for `seconds`.
 */
export function cpuAtFixedRate(url, pid, { seconds, connections, rate }) {
  return new Promise((resolve, reject) => {
    let answered = 0;
    let from;
    const instance = autocannon(
      {
        url,
        connections,
        duration: seconds + 2,
        overallRate: rate,
        method: 'POST',
        headers,
        idReplacement: true,
        requests: events.map((event) => ({
          method: 'POST',
          body: JSON.stringify({ ...event, messageId: `ac-${process.pid}-[<id>]` }),
        })),
      },
      (err, result) => {
        if (err) return reject(err);
        const non2xx = result.non2xx + result.errors + result.timeouts;
        resolve({
          cpuMicrosPerEvent: (1000 * (to.cpuMs - from.cpuMs)) / (to.answered - from.answered),
          non2xx,
        });
      },
    );
    let to;
    instance.on('response', () => answered++);
    setTimeout(() => {
      from = { cpuMs: cpuMs(pid), answered };
    }, 1000);
    setTimeout(
      () => {
        to = { cpuMs: cpuMs(pid), answered };
        instance.stop();
      },
      1000 + seconds * 1000,
    );
  });
}

/** Pins this process (every thread: autocannon runs in it) to the client core. */
export function pinSelf() {
  if (PIN) spawnSync('taskset', ['-a', '-p', '-c', CLIENT_CORE, String(process.pid)], { stdio: 'ignore' });
}
