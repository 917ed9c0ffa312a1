// What the `segment-endpoint read` tests share: stored lines written as the file store writes them, the
// command spawned as the tests start the CLI, and readStore's lines collected or followed one at a time.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StoredLine } from '../src/read/store-reader.ts';
import { CLI, cleanEnv, ROOT } from './helpers-spawn.ts';

/** A stored line of the shape the file store writes; `pad` bytes of padding make it longer. */
export function stored(type: string, id: string, pad = 0): string {
  const event = { type, messageId: id, ...(pad > 0 && { properties: { pad: 'x'.repeat(pad) } }) };
  return JSON.stringify({ receivedAt: '2026-11-30T12:00:00.000Z', source: 'a1b2c3d4', settings: {}, event });
}

/** Appends `lines` (each with its newline) and then `tail` (no newline: a line being written). */
export function append(dir: string, name: string, lines: readonly string[], tail = ''): void {
  appendFileSync(join(dir, name), lines.map((line) => `${line}\n`).join('') + tail);
}

export interface Run {
  readonly child: ReturnType<typeof spawn>;
  stdout(): string;
  stderr(): string;
  /** The exit code (-1 for a signal) once stdout and stderr are closed too: all output is in. */
  readonly closed: Promise<number>;
}

/** `segment-endpoint read ARGS`, spawned as the tests start the CLI, or with `entry` (BUILT: as shipped). */
export function spawnRead(args: readonly string[], entry: readonly string[] = CLI): Run {
  const child = spawn(process.execPath, [...entry, 'read', ...args], { cwd: ROOT, env: cleanEnv() });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const closed = new Promise<number>((done) => child.on('close', (code) => done(code ?? -1)));
  return { child, stdout: () => stdout, stderr: () => stderr, closed };
}

export async function runRead(
  args: readonly string[],
  entry: readonly string[] = CLI,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const run = spawnRead(args, entry);
  const code = await run.closed;
  return { code, stdout: run.stdout(), stderr: run.stderr() };
}

export const linesOf = (text: string) => text.split('\n').filter((line) => line !== '');

export async function collect(lines: AsyncIterable<StoredLine>): Promise<StoredLine[]> {
  const all: StoredLine[] = [];
  for await (const line of lines) all.push(line);
  return all;
}

/**
 * A follow's lines one at a time: `next(ms)` is the next line, or 'nothing' if none comes within `ms` (the
 * line asked for is then the next one given: a request is never lost).
 */
export function follower(it: AsyncIterator<StoredLine>) {
  let pending: Promise<IteratorResult<StoredLine>> | undefined;
  const next = async (ms: number): Promise<StoredLine | 'nothing'> => {
    pending ??= it.next();
    let timer: NodeJS.Timeout | undefined;
    const nothing = new Promise<'nothing'>((done) => {
      timer = setTimeout(done, ms, 'nothing');
    });
    const result = await Promise.race([pending, nothing]).finally(() => clearTimeout(timer));
    if (result === 'nothing') return result;
    pending = undefined;
    return result.done ? assert.fail('the follow ended') : result.value;
  };
  /** The next `n` lines' text, each within `ms`. */
  const take = async (n: number, ms = 5000): Promise<string[]> => {
    const texts: string[] = [];
    while (texts.length < n) {
      const line = await next(ms);
      assert.notEqual(line, 'nothing', `line ${texts.length + 1} of ${n} came within ${ms} ms`);
      texts.push((line as StoredLine).text);
    }
    return texts;
  };
  return { next, take };
}
