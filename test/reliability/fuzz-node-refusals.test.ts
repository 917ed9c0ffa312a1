// Node's own refusals, found by fuzzing (no Host, an unknown Expect): answered in JSON like every other.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { basic } from '../helpers.ts';
import { testCert } from '../helpers-cert.ts';
import { KEY } from './fuzz-cases.ts';
import { overRaw } from './fuzz-transport.ts';
import { type Endpoint, startEndpoint, tlsFlags } from './harness.ts';

// Found by fuzzing: two refusals come from Node's HTTP server itself, before the handler or the
// clientError hook sees the request, so they are not the JSON `{message, code}` every other refusal is.
// - An HTTP/1.1 request without Host: Node answers 400 with an empty body (`requireHostHeader`).
// - `Expect:` with anything but 100-continue: Node answers 417 with an empty body (no `checkExpectation`
//   listener).
// Segment always sends Host and never Expect, so its senders are unaffected; a hand-written client is
// shown an empty body instead of what is wrong.
test("Node's own refusals (no Host, an unknown Expect) are JSON like every other", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-fuzz-'));
  const { cert } = testCert();
  let endpoint: Endpoint | undefined;
  try {
    endpoint = await startEndpoint([
      ...tlsFlags(dir),
      '--out',
      join(dir, 'data'),
      '--api-key',
      KEY,
      '--log-level',
      'warn',
    ]);
    const event = Buffer.from(
      JSON.stringify({ type: 'track', event: 'E', userId: 'u1', messageId: 'node-own' }),
    );
    const head = `Authorization: ${basic(KEY)}\r\nContent-Type: application/json\r\nContent-Length: ${event.length}\r\n`;
    const shapes = {
      'no Host': `POST / HTTP/1.1\r\n${head}\r\n`,
      'Expect: x': `POST / HTTP/1.1\r\nHost: localhost\r\nExpect: x\r\n${head}\r\n`,
    };
    const wrong: string[] = [];
    for (const [name, text] of Object.entries(shapes)) {
      const outcome = await overRaw(endpoint.port, cert, Buffer.concat([Buffer.from(text), event]), false);
      const shown =
        outcome.kind === 'answer'
          ? `${outcome.answer.status} ${JSON.stringify(outcome.answer.body)}`
          : outcome.kind;
      t.diagnostic(`${name}: answered ${shown}`);
      let parsed: { message?: unknown; code?: unknown } | undefined;
      try {
        parsed = outcome.kind === 'answer' ? JSON.parse(outcome.answer.body) : undefined;
      } catch {
        parsed = undefined;
      }
      const refused =
        outcome.kind === 'answer' && outcome.answer.status >= 400 && outcome.answer.status < 500;
      if (!refused || typeof parsed?.message !== 'string' || typeof parsed?.code !== 'string') {
        wrong.push(`${name}: answered ${shown}`);
      }
    }
    assert.deepEqual(wrong, [], 'every refusal is a 4xx with a JSON {message, code}');
  } finally {
    if (endpoint !== undefined && endpoint.child.exitCode === null) {
      endpoint.child.kill('SIGTERM');
      await endpoint.exit;
    }
    rmSync(dir, { recursive: true, force: true });
  }
});
