// The reader's checkpoint under a power cut (issue 14): a reader saves its position three times (each
// save: temp file written and fsync'd, renamed over the checkpoint, directory fsync'd), against the
// in-memory file system that writes down every change. On every state a power cut could leave, the
// checkpoint must load (never empty, never half-written), hold a position no older than the last save
// that returned, and take a new save.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Positions } from '../src/read/checkpoint.ts';
import { Mark } from '../src/read/mark.ts';
import { describeState } from './crash/describe.ts';
import { BOUNDED, type CrashState, explore } from './crash/explore.ts';
import { ModelFs, type Skippable } from './crash/model-fs.ts';

const DIR = '/var/lib/segment-endpoint-reader';
const CHECKPOINT = `${DIR}/read.checkpoint`;
const FILE = 'events-2026-11-30.ndjson';
const SAVES = 3;
const offsetOf = (save: number) => save * 1000;

async function workload(skip: ReadonlySet<Skippable>): Promise<ModelFs> {
  const fs = new ModelFs(DIR);
  const positions = await Positions.load(CHECKPOINT, fs.process(skip));
  for (let save = 1; save <= SAVES; save++) {
    const offset = offsetOf(save);
    // Another file's position too, so that a save is more than one short line.
    positions.set(FILE, new Mark(offset, offset - 100, 'a'.repeat(64)));
    positions.set(`events-2026-11-29.ndjson`, new Mark(offset * 7));
    await positions.save();
    fs.mark(`saved:${save}`);
  }
  return fs;
}

async function recover(state: CrashState): Promise<string | undefined> {
  const fs = new ModelFs(DIR, state.files);
  let positions: Positions;
  try {
    positions = await Positions.load(CHECKPOINT, fs.process());
  } catch (err) {
    return `the checkpoint does not load: ${(err as Error).message}`;
  }
  const offset = positions.get(FILE).offset;
  const save = offset / 1000;
  if (!Number.isInteger(save) || save < 0 || save > SAVES) return `the checkpoint holds offset ${offset}`;
  const returned = [...state.marks].filter((mark) => mark.startsWith('saved:')).length;
  if (save < returned) return `the checkpoint went back to save ${save} after save ${returned} returned`;
  // The reader carries on: its next save lands and loads back.
  positions.set(FILE, new Mark(123_456));
  await positions.save();
  const again = await Positions.load(CHECKPOINT, fs.process());
  if (again.get(FILE).offset !== 123_456) return 'a save after recovery did not load back';
  return undefined;
}

test(
  'every state a power cut can leave the read checkpoint in loads, no older than the last save',
  BOUNDED,
  async () => {
    const fs = await workload(new Set());
    const { states, violations } = await explore(fs, recover, 1);
    const first = violations[0];
    assert.equal(violations.length, 0, first && `${first.problem}\n${describeState(fs, first.state)}`);
    assert.ok(states > 100 && states < 20_000, `${states} states`);
    console.log(`# read checkpoint: ${states} crash states explored, ${violations.length} violations`);
  },
);

for (const [skipped, problem] of [
  ['syncDirectory', /went back to save \d after save \d returned/],
  ['fdatasync', /does not load/],
] as const) {
  test(`the explorer finds what a checkpoint without its ${skipped} calls would lose`, BOUNDED, async () => {
    const fs = await workload(new Set([skipped]));
    const { states, violations } = await explore(fs, recover, 1);
    const first = violations[0];
    assert.ok(first !== undefined);
    assert.match(first.problem, problem);
    console.log(`# without ${skipped}: the first violation, at state ${states}:`);
    console.log(`# ${first.problem}\n${describeState(fs, first.state).replace(/^/gm, '#   ')}`);
  });
}
