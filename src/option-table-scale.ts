import type { OptionRow } from './option-table.ts';

// The option table's rows for serving many customers and processes (option-table.ts spreads them in
// after --out): more processes on one VM, what several processes or VMs share (each loads its code only
// when given), and each customer's share of the endpoint.

const env = (name: string) => `SEGMENT_ENDPOINT_${name}`;

export const SCALE_OPTIONS = {
  workers: {
    scope: 'cli',
    flag: '--workers N',
    env: env('WORKERS'),
    default: '1',
    help: 'worker processes sharing the port (node:cluster), 1 to 16 a CPU, or auto for one a CPU; with the file store each writes its own file',
  },
  postgres: {
    scope: 'cli',
    flag: '--postgres URL',
    env: env('POSTGRES_URL'),
    help: 'store events in PostgreSQL instead of files, e.g. postgres://user@host:5432/db; duplicates are suppressed across every process that shares it',
  },
  postgresTable: {
    scope: 'cli',
    flag: '--postgres-table NAME',
    env: env('POSTGRES_TABLE'),
    default: 'segment_events',
    help: 'the table, created at start when missing',
  },
  rateLimit: {
    scope: 'handler',
    flag: '--rate-limit N',
    env: env('RATE_LIMIT'),
    cli: 'integer',
    default: 0, // events a second per API key; 0: no limit
    min: 0,
    max: 1_000_000,
    help: "events a second per API key, in bursts of up to N, past which 429 + Retry-After; rate=N on a key's line of --api-keys-file sets its own; 0: no limit",
  },
  cpuShare: {
    scope: 'handler',
    flag: '--cpu-share PERCENT',
    env: env('CPU_SHARE'),
    cli: 'integer',
    default: 50, // percent of the event loop's time each API key may take while others wait; 0: no limit
    min: 0,
    max: 100,
    help: 'percent of the event loop each API key may take, over a second, while other keys wait, past which 429 + Retry-After; 0: no limit',
  },
  idempotencyRedis: {
    scope: 'cli',
    flag: '--idempotency-redis URL',
    env: env('IDEMPOTENCY_REDIS_URL'),
    help: 'remember processed messageIds in Redis, e.g. redis://host:6379, so that workers and VMs suppress duplicates across each other',
  },
} as const satisfies Record<string, OptionRow>;
