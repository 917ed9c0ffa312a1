// What the duplicate-suppression tests share: a fresh process per test, its events sent by copies at
// once or one after another, what its store holds of an event, and the file's figures.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { testCert } from '../helpers-cert.ts';
import {
  type Endpoint,
  type Outcome,
  readStore,
  recordFigures,
  send,
  startEndpoint,
  tlsFlags,
} from './harness.ts';

export const KEY = 'dev-key';
const { cert } = testCert();

/**
 * The figures of a test file, recorded under `name` once its tests are done, and a new temporary
 * directory a call of `tempDir`, all removed then.
 */
export function idempotencyFiles(name: string): { figures: Record<string, unknown>; tempDir(): string } {
  const dirs: string[] = [];
  const figures: Record<string, unknown> = {};

  after(() => {
    recordFigures(name, figures);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-idem-'));
    dirs.push(dir);
    return dir;
  }

  return { figures, tempDir };
}

/** Runs `body` against a fresh process; always stops it, and checks it drains cleanly. */
export async function withEndpoint(
  dir: string,
  args: string[],
  body: (endpoint: Endpoint) => Promise<void>,
  env: NodeJS.ProcessEnv = {},
): Promise<void> {
  const endpoint = await startEndpoint([...tlsFlags(dir), '--log-level', 'warn', ...args], env);
  try {
    await body(endpoint);
  } finally {
    endpoint.child.kill('SIGTERM');
    const code = await endpoint.exit;
    assert.equal(code, 0, `the endpoint drains and exits 0:\n${endpoint.output()}`);
  }
}

export const trackEvent = (messageId: string) => ({
  type: 'track',
  event: 'Order Completed',
  userId: 'u1',
  messageId,
  properties: { total: 42 },
});

export const agentOf = () => new Agent({ keepAlive: true, maxSockets: 1, ca: cert });

/** Opens the agent's connection (TLS handshake included) before the test needs it. */
export function warm(agent: Agent, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(new URL('/health', url), { agent, servername: 'localhost' }, (res) => {
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', reject);
    req.end();
  });
}

/** `copies` of one event at once, each over a connection of its own that is already open. */
export async function concurrently(url: string, event: { messageId: string }, copies: number, key = KEY) {
  const agents = Array.from({ length: copies }, agentOf);
  try {
    await Promise.all(agents.map((agent) => warm(agent, url)));
    return await Promise.all(agents.map((agent) => send(agent, url, event, key)));
  } finally {
    for (const agent of agents) agent.destroy();
  }
}

export function countStatuses(outcomes: Outcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) counts[o.status] = (counts[o.status] ?? 0) + 1;
  return counts;
}

export type StoredRecord = { source?: string; event: { messageId?: string } };

export function stored(out: string, messageId: string): StoredRecord[] {
  const { records, broken } = readStore(out);
  assert.equal(broken, 0, 'no torn lines in the store');
  return (records as StoredRecord[]).filter((r) => r.event.messageId === messageId);
}
