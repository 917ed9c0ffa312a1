import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { cleanupOnExit, freePort, tail } from './process.ts';

// A real PostgreSQL server of the test's own: a new cluster in a temporary directory, on a free port of
// 127.0.0.1, trusting every local connection. scripts/install-services.sh installs PostgreSQL.

const run = promisify(execFile);
const VERSIONS = '/usr/lib/postgresql';
/** initdb refuses to run as root: as root, the cluster belongs to the Debian package's system user. */
const SYSTEM_USER = 'postgres';

export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`: the superuser, no password. */
  readonly url: string;
  readonly port: number;
  /** Stops the server (a fast shutdown); its data is kept, for `start` to bring it back. */
  stop(): Promise<void>;
  /** Starts the server again, on the same port and data. */
  start(): Promise<void>;
  /** Stops the server at once (no shutdown checkpoint) and removes its data. Safe to call twice. */
  destroy(): Promise<void>;
}

/**
 * Starts a new PostgreSQL server; takes a second or two (initdb, then start-up). As root, the server
 * runs as the `postgres` user, which must be able to reach os.tmpdir() (/tmp is).
 */
export async function startPostgres(): Promise<PostgresServer> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-pg-'));
  const data = join(dir, 'data');
  const log = join(dir, 'postgres.log');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) chownSync(dir, systemId('-u'), systemId('-g'));
  // The command line of a PostgreSQL program, as the user who owns the cluster.
  const asOwner = (program: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', SYSTEM_USER, '--', join(bin, program), ...args]] : [join(bin, program), args];
  const pgCtl = async (args: string[]) => {
    const [command, argv] = asOwner('pg_ctl', ['-D', data, ...args]);
    try {
      await run(command, argv, { cwd: dir });
    } catch (err) {
      throw new Error(`pg_ctl ${args.join(' ')} failed:\n${logOf(log)}`, { cause: err });
    }
  };
  const port = await freePort();
  // -c listen_addresses: TCP on 127.0.0.1 only; -k: the Unix socket in our own directory, not in
  // /var/run/postgresql (which may not exist, or belong to the system cluster).
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=100`;
  const start = () => pgCtl(['-w', '-l', log, '-o', options, 'start']);
  let destroyed = false;
  const wipe = () => {
    spawnSync(...asOwner('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']), { cwd: dir, stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  };
  const unregister = cleanupOnExit(wipe);
  try {
    // --no-locale: the machine's locale may not be generated; --no-sync: a test cluster need not
    // survive a power cut, and initdb is seconds faster without it.
    const [command, argv] = asOwner('initdb', ['-D', data, '-A', 'trust', '-E', 'UTF8', '-U', SYSTEM_USER]);
    await run(command, [...argv, '--no-locale', '--no-sync'], { cwd: dir });
    await start();
  } catch (err) {
    unregister();
    wipe();
    throw err;
  }
  return {
    url: `postgres://${SYSTEM_USER}@127.0.0.1:${port}/postgres`,
    port,
    stop: () => pgCtl(['-w', '-m', 'fast', 'stop']),
    start,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      unregister();
      try {
        if (existsSync(join(data, 'postmaster.pid'))) await pgCtl(['-w', '-m', 'immediate', 'stop']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** The programs of the newest PostgreSQL installed, e.g. /usr/lib/postgresql/15/bin. */
function binDir(): string {
  const versions = existsSync(VERSIONS)
    ? readdirSync(VERSIONS)
        .filter((v) => existsSync(join(VERSIONS, v, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const newest = versions[0];
  if (newest === undefined) {
    throw new Error(`no PostgreSQL server in ${VERSIONS}/*/bin: run scripts/install-services.sh`);
  }
  return join(VERSIONS, newest, 'bin');
}

/** The uid (`-u`) or gid (`-g`) of the PostgreSQL system user. */
export function systemId(flag: '-u' | '-g'): number {
  try {
    return Number(execFileSync('id', [flag, SYSTEM_USER], { encoding: 'utf8' }).trim());
  } catch (err) {
    throw new Error(`no '${SYSTEM_USER}' user to run PostgreSQL as root: run scripts/install-services.sh`, {
      cause: err,
    });
  }
}

function logOf(file: string): string {
  return existsSync(file) ? tail(readFileSync(file, 'utf8')) : '(no server log)';
}
