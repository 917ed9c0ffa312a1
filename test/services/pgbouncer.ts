import { type ChildProcess, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemId } from './postgres.ts';
import { cleanupOnExit, freePort, tail } from './process.ts';

// A real PgBouncer of the test's own in front of a test PostgreSQL server, on a free port of 127.0.0.1,
// pooling by transaction (as most deployments that put one in front of PostgreSQL do): each transaction
// may run on a different server session, and DISCARD ALL after each one leaves no session setting of a
// client's to the next. scripts/install-services.sh installs pgbouncer.

const START_MS = 10_000;
/** PgBouncer will not run as root: as root it runs as the PostgreSQL system user. */
const SYSTEM_USER = 'postgres';
/** Debian's package puts it in /usr/sbin, which a user's PATH may not hold. */
const PROGRAM = existsSync('/usr/sbin/pgbouncer') ? '/usr/sbin/pgbouncer' : 'pgbouncer';

export interface Pooler {
  /** The database `postgres` of the server behind, through the pooler, as `user`. */
  url(user: string): string;
  /** Stops the pooler and removes its directory. Safe to call twice. */
  destroy(): Promise<void>;
}

/** Starts pgbouncer in front of the server on `serverPort`, trusting the `users` it names. */
export async function startPooler(serverPort: number, users: readonly string[]): Promise<Pooler> {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-pgbouncer-'));
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  writeFileSync(join(dir, 'users.txt'), users.map((user) => `"${user}" ""\n`).join(''));
  writeFileSync(
    join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `postgres = host=127.0.0.1 port=${serverPort} dbname=postgres`,
      '[pgbouncer]',
      `listen_addr = 127.0.0.1`,
      `listen_port = ${port}`,
      `unix_socket_dir = ${dir}`,
      'auth_type = trust',
      `auth_file = ${join(dir, 'users.txt')}`,
      'pool_mode = transaction',
      'server_reset_query = DISCARD ALL',
      'server_reset_query_always = 1',
      // the sink sends its statement timeout at start-up, which PgBouncer refuses unless told to ignore it
      'ignore_startup_parameters = statement_timeout',
      `logfile = ${join(dir, 'pgbouncer.log')}`,
      '',
    ].join('\n'),
  );
  if (asRoot) chownSync(dir, systemId('-u'), systemId('-g'));
  const args = [...(asRoot ? ['-u', SYSTEM_USER] : []), join(dir, 'pgbouncer.ini')];
  const child = spawn(PROGRAM, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = tail(output + chunk.toString());
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const wipe = () => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  const unregister = cleanupOnExit(wipe);
  try {
    await accepting(port, child, () => output);
  } catch (err) {
    unregister();
    wipe();
    throw err;
  }
  let destroyed = false;
  return {
    url: (user) => `postgres://${user}@127.0.0.1:${port}/postgres`,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      unregister();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves once `port` takes a connection; rejects if `child` exits first or START_MS pass. */
async function accepting(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const began = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`pgbouncer exited (${child.exitCode}):\n${output()}`);
    if (Date.now() - began > START_MS)
      throw new Error(`pgbouncer not listening in ${START_MS} ms:\n${output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
