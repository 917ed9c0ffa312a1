// What the PostgreSQL sink's tests share: a real server for the file's tests (started before them,
// destroyed after, with whatever endpoints still run), a client on it, and endpoints that store in it.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import pg from 'pg';
import { type PostgresServer, startPostgres } from '../services/postgres.ts';
import { cleanup, type Endpoint, startEndpoint, tlsFlags } from './harness.ts';

export interface WithPostgres {
  readonly dir: string;
  readonly server: PostgresServer;
  readonly client: pg.Client;
  /** The CLI storing in `table`, with the API key `dev-key` (and `extra` flags); stopped after the file. */
  endpoint(table: string, extra?: readonly string[], url?: string): Promise<Endpoint>;
}

export function withPostgres(name: string): WithPostgres {
  const dir = mkdtempSync(join(tmpdir(), `segment-endpoint-${name}-`));
  const endpoints: Endpoint[] = [];
  let server: PostgresServer | undefined;
  let client: pg.Client | undefined;
  before(async () => {
    server = await startPostgres();
    client = new pg.Client({ connectionString: server.url });
    // A test that stops the server ends this connection too: not an error of the test's.
    client.on('error', () => {});
    await client.connect();
  });
  after(async () => {
    await cleanup(dir, endpoints)();
    await client?.end().catch(() => {});
    await server?.destroy();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('PostgreSQL is not started yet');
    return value;
  };
  return {
    dir,
    get server() {
      return started(server);
    },
    get client() {
      return started(client);
    },
    async endpoint(table, extra = [], url = started(server).url) {
      const args = [...tlsFlags(dir), '--api-key', 'dev-key', '--postgres', url, '--postgres-table', table];
      const ep = await startEndpoint([...args, ...extra]);
      endpoints.push(ep);
      return ep;
    },
  };
}
