// The pipeline benchmark with each handler alone in processes of its own (pipeline.mjs --separate): a
// check that sharing one process does not decide a group's figures. Each process serves one handler and
// a bare one beside it (pipeline-group.mjs --serve); slices are taken in turn across the processes as
// one process takes its handlers'.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { GROUPS, SLICE } from './stages.mjs';

const child = new URL('./pipeline-group.mjs', import.meta.url).pathname;

/**
 * A group's handlers, `processes` processes each (fewer when the run has fewer slices than that), over
 * `rounds` rounds of `n` events: per-round figures in the form pipeline.mjs reads a one-process group's
 * (a handler's net over the bare handler of its own process; `bare` the mean of theirs), and each
 * process's net over the whole run (`processes`), where its collections even out.
 */
export async function measureSeparately(group, { rounds, n, processes }) {
  const names = GROUPS[group].names.filter((name) => name !== 'bare');
  const slices = Math.ceil(n / SLICE);
  const count = Math.min(processes, rounds * slices); // a process never asked would hold no figure
  const pools = new Map();
  try {
    for (const name of names) {
      const pool = [];
      for (let k = 0; k < count; k++) pool.push(await serving(name, GROUPS[group].injector));
      pools.set(name, pool);
    }
    return await measureIn(pools, names, rounds, slices);
  } finally {
    // Gone before the next group's processes start.
    await Promise.all([...pools.values()].flat().map((proc) => proc.close()));
  }
}

async function measureIn(pools, names, rounds, slices) {
  const count = pools.get(names[0]).length;
  const fresh = () => ({ ns: 0, gc: 0, bareNs: 0, bareGc: 0, n: 0 });
  const totals = Object.fromEntries(names.map((name) => [name, pools.get(name).map(fresh)]));
  const runs = { bare: [] };
  const gcRuns = { bare: [] };
  for (const name of names) {
    runs[name] = [];
    gcRuns[name] = [];
  }
  for (let round = 0; round < rounds; round++) {
    const sums = Object.fromEntries(names.map((name) => [name, fresh()]));
    for (let slice = 0; slice < slices; slice++) {
      const turn = round * slices + slice;
      const k = turn % count;
      // Whichever slice runs first after another process ran pays for bringing its process's memory
      // back into the caches: a process's two take turns at it, from one of its slices to the next.
      const bareFirst = (Math.floor(turn / count) + k) % 2 === 0;
      for (let i = 0; i < names.length; i++) {
        const name = names[(i + round) % names.length];
        const proc = pools.get(name)[k];
        const first = await proc.measure(bareFirst ? 'bare' : name);
        const second = await proc.measure(bareFirst ? name : 'bare');
        const [bare, own] = bareFirst ? [first, second] : [second, first];
        for (const into of [sums[name], totals[name][k]]) {
          into.ns += own.ns;
          into.gc += own.gc;
          into.bareNs += bare.ns;
          into.bareGc += bare.gc;
          into.n++;
        }
      }
    }
    const mean = (key) => names.reduce((sum, name) => sum + sums[name][key], 0) / names.length / slices;
    runs.bare.push(mean('bareNs'));
    gcRuns.bare.push(mean('bareGc'));
    for (const name of names) {
      const { ns, gc, bareNs, bareGc } = sums[name];
      runs[name].push((ns - bareNs) / slices + runs.bare[round]);
      gcRuns[name].push((gc - bareGc) / slices + gcRuns.bare[round]);
    }
  }
  const processes = Object.fromEntries(
    names.map((name) => [
      name,
      totals[name].map(({ ns, gc, bareNs, bareGc, n }) => ({
        net: (ns - bareNs) / n,
        mutatorNet: (ns - gc - (bareNs - bareGc)) / n,
      })),
    ]),
  );
  return { names: ['bare', ...names], runs, gcRuns, processes };
}

/**
 * A --serve process of `name`, driven by `injector` (`plain` for plain-inject.mjs), once warm. It is
 * asked on its stdin and answers on a pipe of its own (fd 3), so that nothing else it prints can be taken
 * for an answer; each answer names what it measured.
 */
async function serving(name, injector = 'light-my-request') {
  const proc = spawn(process.execPath, [child, '--serve', name, injector], {
    stdio: ['pipe', 'inherit', 'inherit', 'pipe'],
  });
  // A write to a process that ended fails on its own; the missing answer says so, with how it ended.
  proc.stdin.on('error', () => {});
  let ended = '';
  const exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      ended = ` (it ended: ${signal ?? `exit code ${code}`})`;
      resolve();
    });
  });
  const lines = createInterface({ input: proc.stdio[3] })[Symbol.asyncIterator]();
  const next = async (what) => {
    const { value, done } = await lines.next();
    if (done) throw new Error(`${name}: its process gave no ${what}${ended}`);
    return value;
  };
  const ready = await next('sign of being ready');
  if (ready !== 'ready') throw new Error(`${name}: its process said ${JSON.stringify(ready)}, not "ready"`);
  return {
    async measure(handler) {
      proc.stdin.write(`${JSON.stringify([handler, SLICE])}\n`);
      const line = await next(`answer for ${handler}`);
      const answer = JSON.parse(line);
      if (answer.name !== handler || !Number.isFinite(answer.ns) || !Number.isFinite(answer.gc)) {
        throw new Error(`${name}: its process answered ${line} when asked for ${handler}`);
      }
      return answer;
    },
    close() {
      proc.stdin.end();
      return exited;
    },
  };
}
