// `segment-endpoint read --follow` with the endpoint writing, and a checkpoint that survives kill -9: every
// line at least once, whole, and a restart resumes.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { tempDirs, trackEvent } from './helpers.ts';
import { waitUntil } from './helpers-wait.ts';
import { append, linesOf, runRead, spawnRead, stored } from './read-harness.ts';
import { cleanup, type Endpoint, load, startEndpoint, stopCleanly, tlsFlags } from './reliability/harness.ts';

const tempDir = tempDirs('read');

describe('segment-endpoint read: following, restarts, failures', () => {
  test('--follow with the endpoint writing: every acknowledged messageId exactly once', {
    timeout: 30_000,
  }, async (t) => {
    const dir = tempDir();
    const out = join(dir, 'store');
    const endpoints: Endpoint[] = [];
    t.after(cleanup(join(dir, 'endpoint'), endpoints));
    const ep = await startEndpoint([
      ...tlsFlags(join(dir, 'endpoint')),
      '--api-key',
      'dev-key',
      '--out',
      out,
      '--workers',
      '2',
    ]);
    endpoints.push(ep);
    const checkpoint = join(dir, 'reader.checkpoint');
    const reader = spawnRead(['--out', out, '--follow', '--from', checkpoint]);
    t.after(() => reader.child.kill('SIGKILL'));
    await waitUntil(
      () => existsSync(checkpoint),
      () => 'the reader to start',
    );
    const answers = await load({
      url: ep.url,
      connections: 8,
      maxRequests: 600,
      event: (n) => trackEvent({ messageId: `follow-${n}` }),
    });
    const acknowledged = answers.filter((a) => a.status === 200).map((a) => a.id);
    assert.equal(acknowledged.length, 600);
    const printed = () => linesOf(reader.stdout()).map((line) => JSON.parse(line).event.messageId as string);
    await waitUntil(
      () => printed().length >= acknowledged.length,
      () => `${acknowledged.length} lines, not ${printed().length}`,
    );
    reader.child.kill('SIGTERM');
    assert.equal(await reader.closed, 0, reader.stderr());
    assert.ok(reader.stdout().endsWith('\n'));
    const ids = printed();
    assert.equal(new Set(ids).size, ids.length, 'no line twice');
    assert.deepEqual([...ids].sort(), [...acknowledged].sort(), 'every acknowledged event, nothing else');
    // SIGTERM saved the checkpoint: every file done to its end.
    const { files } = JSON.parse(readFileSync(checkpoint, 'utf8')) as {
      files: Record<string, { offset: number }>;
    };
    assert.ok(Object.keys(files).length >= 1);
    for (const [name, position] of Object.entries(files)) {
      assert.equal(position.offset, statSync(join(out, name)).size, name);
    }
    await stopCleanly(ep);
  });

  test('killed with SIGKILL and restarted with the same --from: every line at least once, whole, not from scratch', {
    timeout: 30_000,
  }, async () => {
    const dir = tempDir();
    const checkpoint = join(dir, 'reader.checkpoint');
    const store = join(dir, 'store');
    mkdirSync(store);
    const expected: string[] = [];
    for (const worker of [1, 2]) {
      const lines = Array.from({ length: 20_000 }, (_, n) => stored('track', `w${worker}-${n}`, 200));
      append(store, `events-2026-11-30-w${worker}.ndjson`, lines);
      expected.push(...lines);
    }
    // The first run's stdout is drained slowly, so that it is killed part-way, after saving at least once.
    const first = spawnRead(['--out', store, '--from', checkpoint]);
    first.child.stdout?.on('data', () => {
      first.child.stdout?.pause();
      setTimeout(() => first.child.stdout?.resume(), 20);
    });
    const progress = () => {
      try {
        const { files } = JSON.parse(readFileSync(checkpoint, 'utf8'));
        return Object.values(files as Record<string, { offset: number }>).reduce((a, b) => a + b.offset, 0);
      } catch {
        return 0;
      }
    };
    await waitUntil(
      () => progress() > 0,
      () => 'a checkpoint with progress',
    );
    first.child.kill('SIGKILL');
    assert.equal(await first.closed, -1);
    const second = await runRead(['--out', store, '--from', checkpoint]);
    assert.equal(second.code, 0, second.stderr);

    const known = new Set(expected);
    const firstLines = linesOf(first.stdout());
    const secondLines = linesOf(second.stdout);
    assert.ok(first.stdout().endsWith('\n'), 'the killed run printed no partial line');
    for (const line of [...firstLines, ...secondLines]) assert.ok(known.has(line), 'each line whole');
    const printed = new Set([...firstLines, ...secondLines]);
    assert.equal(printed.size, expected.length, 'every line at least once');
    const repeated = firstLines.length + secondLines.length - expected.length;
    assert.ok(firstLines.length > 0 && secondLines.length > 0, 'the first run was killed part-way');
    assert.ok(secondLines.length < expected.length, 'the second run resumed');
    assert.ok(repeated < expected.length / 10, `few lines printed twice (${repeated})`);
    assert.deepEqual(secondLines, expected.slice(expected.length - secondLines.length), 'resumed in order');
  });

  test('the checkpoint is replaced atomically: it always parses, also after kill -9', {
    timeout: 20_000,
  }, async () => {
    const dir = tempDir();
    const checkpoint = join(dir, 'reader.checkpoint');
    const name = 'events-2026-11-30.ndjson';
    append(dir, name, [stored('track', 'first')]);
    const reader = spawnRead(['--out', dir, '--follow', '--from', checkpoint]);
    await waitUntil(
      () => reader.stdout() !== '',
      () => 'the first line printed',
    );
    const inodes = new Set<number>();
    let reads = 0;
    let n = 0;
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      if (n % 10 === 0) append(dir, name, [stored('track', `m${n}`)]);
      n++;
      // Read as a consumer restarting at that moment would: whole, parsed.
      const text = readFileSync(checkpoint, 'utf8');
      assert.ok(JSON.parse(text).files, `a whole checkpoint: ${JSON.stringify(text)}`);
      inodes.add(statSync(checkpoint).ino);
      reads++;
      await new Promise((r) => setTimeout(r, 2));
    }
    reader.child.kill('SIGKILL');
    await reader.closed;
    const { files } = JSON.parse(readFileSync(checkpoint, 'utf8'));
    const position = files[name].offset as number;
    const stored_ = readFileSync(join(dir, name));
    assert.ok(position > 0 && position <= stored_.length && stored_[position - 1] === 0x0a, 'at a line end');
    assert.ok(
      inodes.size >= 2,
      `renamed over, not rewritten in place (${inodes.size} inodes in ${reads} reads)`,
    );
  });
});
