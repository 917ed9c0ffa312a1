import { createHash } from 'node:crypto';
import type { ModelFs, Op } from './model-fs.ts';

// The crash-state explorer, the technique of ALICE (Pillai et al., OSDI 2014) and CrashMonkey (Mohan et
// al., OSDI 2018) applied to this project's files: from the trace a workload left in a ModelFs, every
// state of the disk that a power cut after any of its operations could leave, under this model of
// ext4 (data=ordered, the default) and xfs:
// - A file keeps every change its last fdatasync covered. Of its later changes it keeps a prefix, in the
//   order they were made, and the first change it does not keep whole, if a write, may be torn: cut after
//   any byte, or grown to its full size with zeros where its bytes did not reach the disk. Or, out of
//   order (xfs completes I/O out of order), a later part of those changes kept and an earlier part a hole
//   of zeros.
// - The directory keeps every creation and rename its last fsync covered. Of later ones it keeps a prefix
//   (both file systems journal them in order). A file's own fdatasync does not make its name durable.
//   A directory made during the trace may itself be lost until its parent is fsync'd.
// Files are independent of one another: each may keep more or less than the others.

/** A test's bound: a change that makes the workload or a recovery hang fails it instead. */
export const BOUNDED = { timeout: 120_000 };

export interface CrashState {
  /** How many operations of the trace were made before the power went. */
  readonly at: number;
  readonly files: ReadonlyMap<string, Buffer>;
  /** The workload's marks made before the crash: the answers it had given. */
  readonly marks: ReadonlySet<string>;
  /** What the crash lost, in words. */
  readonly lost: readonly string[];
}

export interface Violation {
  readonly state: CrashState;
  readonly problem: string;
}

/**
 * Runs `check` (recovery, then the invariants) on every distinct crash state of `fs`'s trace, or until
 * `stopAfter` of them have failed.
 */
export async function explore(
  fs: ModelFs,
  check: (state: CrashState) => Promise<string | undefined>,
  stopAfter = Number.POSITIVE_INFINITY,
): Promise<{ readonly states: number; readonly violations: readonly Violation[] }> {
  let states = 0;
  const violations: Violation[] = [];
  for (const state of crashStates(fs)) {
    states++;
    const problem = await check(state).catch((err: Error) => `recovery threw ${err.stack ?? err}`);
    if (problem !== undefined) violations.push({ state, problem });
    if (violations.length >= stopAfter) break;
  }
  return { states, violations };
}

/** Every distinct state (files and marks) a power cut could leave, crash point by crash point. */
export function* crashStates(fs: ModelFs): Generator<CrashState> {
  const seen = new Set<string>();
  for (let at = 0; at <= fs.trace.length; at++) {
    const ops = fs.trace.slice(0, at);
    const marks = new Set(ops.flatMap((op) => (op.kind === 'mark' ? [op.label] : [])));
    for (const dir of directoryChoices(fs, ops)) {
      const entries = [...dir.names];
      const perFile = entries.map(([name, ino]) => dataChoices(fs, ops, ino, name));
      for (const pick of product(perFile)) {
        const files = new Map(entries.map(([name], i) => [name, (pick[i] as Choice).bytes]));
        const key = stateKey(files, marks);
        if (seen.has(key)) continue;
        seen.add(key);
        const lost = [...dir.lost, ...pick.flatMap((choice) => (choice.lost ? [choice.lost] : []))];
        yield { at, files, marks, lost };
      }
    }
  }
}

interface Choice {
  readonly bytes: Buffer;
  readonly lost?: string;
}

type DataOp = Extract<Op, { kind: 'write' | 'truncate' }>;

function directoryChoices(fs: ModelFs, ops: readonly Op[]) {
  const synced = lastIndex(ops, (op) => op.kind === 'syncdir');
  const names = new Map(fs.initialNames);
  const pending: Array<Extract<Op, { kind: 'create' | 'rename' }>> = [];
  ops.forEach((op, i) => {
    if (op.kind !== 'create' && op.kind !== 'rename') return;
    if (i < synced) applyDirectoryOp(names, op);
    else pending.push(op);
  });
  const choices: Array<{ names: Map<string, number>; lost: string[] }> = [];
  // A directory made during the trace whose entry in its parent was not synced: gone, files and all.
  const made = lastIndex(ops, (op) => op.kind === 'mkdir');
  if (made !== -1 && lastIndex(ops, (op) => op.kind === 'syncparent') < made) {
    choices.push({ names: new Map(), lost: ['the directory itself (created, its parent not synced)'] });
  }
  for (let kept = 0; kept <= pending.length; kept++) {
    const lost = pending
      .slice(kept)
      .map((op) =>
        op.kind === 'create'
          ? `the directory entry of ${op.name} (created, not synced)`
          : `the rename of ${op.from} to ${op.to} (not synced)`,
      );
    choices.push({ names: new Map(names), lost });
    if (kept < pending.length) applyDirectoryOp(names, pending[kept] as Op);
  }
  return choices;
}

function applyDirectoryOp(names: Map<string, number>, op: Op): void {
  if (op.kind === 'create') names.set(op.name, op.ino);
  if (op.kind === 'rename') {
    names.set(op.to, names.get(op.from) as number);
    names.delete(op.from);
  }
}

function dataChoices(fs: ModelFs, ops: readonly Op[], ino: number, name: string): Choice[] {
  const synced = lastIndex(ops, (op) => op.kind === 'sync' && op.ino === ino);
  let bytes = fs.initialData.get(ino) ?? Buffer.alloc(0);
  const pending: DataOp[] = [];
  ops.forEach((op, i) => {
    if ((op.kind !== 'write' && op.kind !== 'truncate') || op.ino !== ino) return;
    if (i < synced) bytes = applyDataOp(bytes, op);
    else pending.push(op);
  });
  const choices: Choice[] = [];
  const prefixes = [bytes];
  for (let kept = 0; kept <= pending.length; kept++) {
    const lost = `${name}: ${pending.length - kept} of its ${pending.length} unsynced changes`;
    choices.push({ bytes, ...(kept < pending.length && { lost }) });
    const next = pending[kept];
    if (next === undefined) break;
    if (next.kind === 'write') {
      for (const [torn, how] of tears(next)) {
        choices.push({ bytes: applyDataOp(bytes, torn), lost: `${lost}, the first of them ${how}` });
      }
    }
    bytes = applyDataOp(bytes, next);
    prefixes.push(bytes);
  }
  // Out of order: bytes the unsynced writes put in the file kept while earlier ones are not.
  if (pending.length > 0 && pending.every((op) => op.kind === 'write')) {
    const from = Math.min(...pending.map((op) => (op as Extract<Op, { kind: 'write' }>).offset));
    for (let kept = 1; kept <= pending.length; kept++) {
      for (const [hole, start, end] of holes(prefixes[kept] as Buffer, from)) {
        const lost = `${name}: of its first ${kept} unsynced writes, bytes ${start} to ${end} (zeros)`;
        choices.push({ bytes: hole, lost });
      }
    }
  }
  return choices;
}

/**
 * `bytes` with a hole of zeros at `from` or later that something after it survived: between any two of
 * `from`, the byte after it, the middle, and the line starts after `from`.
 */
function holes(bytes: Buffer, from: number): Array<[Buffer, number, number]> {
  const bounds = new Set([from, from + 1, Math.floor((from + bytes.length) / 2)]);
  for (let i = from; i < bytes.length - 1; i++) if (bytes[i] === 0x0a) bounds.add(i + 1);
  const sorted = [...bounds].filter((at) => at < bytes.length).sort((a, b) => a - b);
  const out: Array<[Buffer, number, number]> = [];
  for (const [i, start] of sorted.entries()) {
    for (const end of sorted.slice(i + 1)) {
      const hole = Buffer.from(bytes);
      hole.fill(0, start, end);
      out.push([hole, start, end]);
    }
  }
  return out;
}

/**
 * The ways a write can reach the disk in part: cut after each of its bytes, or grown to its full size
 * with zeros after none, half or each line of its bytes (pages written, the size journaled, not the rest).
 */
function tears(write: Extract<Op, { kind: 'write' }>): Array<[DataOp, string]> {
  const length = write.bytes.length;
  const torn: Array<[DataOp, string]> = [];
  for (let cut = 1; cut < length; cut++) {
    const bytes = write.bytes.subarray(0, cut);
    torn.push([{ ...write, bytes }, `(a write of ${length} bytes) torn after ${cut}`]);
  }
  const lineEnds = [...write.bytes.entries()].flatMap(([i, byte]) => (byte === 0x0a ? [i + 1] : []));
  for (const real of new Set([0, Math.floor(length / 2), ...lineEnds])) {
    if (real >= length) continue;
    const bytes = Buffer.concat([write.bytes.subarray(0, real), Buffer.alloc(length - real)]);
    torn.push([{ ...write, bytes }, `(a write of ${length} bytes) grown to its size, zeros after ${real}`]);
  }
  return torn;
}

function applyDataOp(bytes: Buffer, op: DataOp): Buffer {
  if (op.kind === 'truncate') {
    const next = Buffer.alloc(op.length);
    bytes.copy(next, 0, 0, Math.min(op.length, bytes.length));
    return next;
  }
  const next = Buffer.alloc(Math.max(bytes.length, op.offset + op.bytes.length));
  bytes.copy(next);
  op.bytes.copy(next, op.offset);
  return next;
}

function lastIndex(ops: readonly Op[], matches: (op: Op) => boolean): number {
  for (let i = ops.length - 1; i >= 0; i--) if (matches(ops[i] as Op)) return i;
  return -1;
}

function* product<T>(lists: readonly (readonly T[])[]): Generator<T[]> {
  const at = lists.map(() => 0);
  for (;;) {
    yield lists.map((list, i) => list[at[i] as number] as T);
    let i = lists.length - 1;
    while (i >= 0 && (at[i] as number) + 1 >= (lists[i] as T[]).length) at[i--] = 0;
    if (i < 0) return;
    at[i] = (at[i] as number) + 1;
  }
}

function stateKey(files: ReadonlyMap<string, Buffer>, marks: ReadonlySet<string>): string {
  const hash = createHash('sha256');
  for (const [name, bytes] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) {
    hash.update(`${name}\0${bytes.length}\0`).update(bytes);
  }
  return `${hash.digest('hex')} ${marks.size}`;
}
