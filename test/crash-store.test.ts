// The file store under a power cut (issue 14). A workload runs against an in-memory file system that
// writes down every change (test/crash/model-fs.ts; the workload and the checks: test/crash/store-workload.ts).
// The explorer (test/crash/explore.ts) then builds every state of the disk a power cut after any
// operation could leave, and on each one runs start-up recovery and appends, and checks what the store
// promises:
// - every acknowledged append is stored exactly once, and an append refused (503) is not stored at all;
//   one cut short by the crash or the kill, or refused after its cut failed too, at most once;
// - every line of every store file is whole (no partial line before a complete one), in its day's file;
// - every fragment the store holds when the workload starts ends up in a `.torn` file (repair's own
//   crashes are explored: the workload's first start repairs two files);
// - the store opens and takes new events, and cuts off a write that fails.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeState } from './crash/describe.ts';
import { BOUNDED, explore } from './crash/explore.ts';
import type { Skippable } from './crash/model-fs.ts';
import { firstStartWorkload, recoverStore, storeWorkload } from './crash/store-workload.ts';

const workloads = {
  'the file store': storeWorkload,
  'the file store committing on the event loop': (skip: ReadonlySet<Skippable>) => storeWorkload(skip, true),
  'a first start': firstStartWorkload,
};

for (const [name, workload] of Object.entries(workloads)) {
  test(
    `every state a power cut can leave ${name} in recovers with nothing acknowledged lost`,
    BOUNDED,
    async () => {
      const { fs, expected } = await workload(new Set());
      const { states, violations } = await explore(fs, (state) => recoverStore(state, expected), 1);
      const first = violations[0];
      assert.equal(violations.length, 0, first && `${first.problem}\n${describeState(fs, first.state)}`);
      // Bounded: thousands of states, not millions (the figures the README gives).
      assert.ok(states > 20 && states < 30_000, `${states} states`);
      console.log(`# ${name}: ${states} crash states explored, ${violations.length} violations`);
    },
  );
}

for (const skipped of ['syncDirectory', 'fdatasync'] as const satisfies readonly Skippable[]) {
  for (const [name, workload] of Object.entries(workloads)) {
    test(`the explorer finds what ${name} would lose without its ${skipped} calls`, BOUNDED, async () => {
      const { fs, expected } = await workload(new Set([skipped]));
      const { states, violations } = await explore(fs, (state) => recoverStore(state, expected), 1);
      const first = violations[0];
      assert.ok(first !== undefined);
      assert.match(first.problem, /acknowledged append \d+ is stored 0 times|is in no .torn file/);
      console.log(`# without ${skipped}: the first violation, at state ${states}:`);
      console.log(`# ${first.problem}\n${describeState(fs, first.state).replace(/^/gm, '#   ')}`);
    });
  }
}
