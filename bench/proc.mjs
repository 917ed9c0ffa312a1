// What the kernel counts for a server process and for the two cores, read from /proc before and after a
// load run: where a round's time went (the server's CPU, the client's core, other tenants, the
// hypervisor), which is what tells a slow round caused by the server from one caused by the machine.
import { readdirSync, readFileSync } from 'node:fs';

const TICK_MS = 10; // USER_HZ: /proc/stat counts in hundredths of a second

const threadMs = (pid, tid) =>
  Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;

/** CPU time of every thread of the process (main, V8's helpers, libuv's pool), in ms, to the ns. */
export function cpuMs(pid) {
  let ms = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ms += threadMs(pid, tid);
    } catch {
      // the thread ended between the listing and the read: its time is lost, a few µs at most
    }
  }
  return ms;
}

const field = (text, name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1]);

/**
 * Idle and stolen ms of each core since boot. Busy time is taken as the rest of the wall time: the kernel
 * measures idle time exactly (NO_HZ), while its user/system counts are samples at each tick, which miss
 * a bursty client's short runs between sleeps. Busy counts interrupts too: loopback TCP runs there.
 */
function cores() {
  const out = [];
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) continue;
    const [, , , idle, iowait, , , steal] = m[2].split(' ').map(Number);
    out[Number(m[1])] = { idle: (idle + iowait) * TICK_MS, steal: steal * TICK_MS };
  }
  return out;
}

/**
 * CPU ms of the kernel's own threads so far: under load, network work moves to ksoftirqd, and it is the
 * bench's own, not another tenant's.
 */
function kernelThreadsMs() {
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
      if ((Number(f[6]) & 0x200000) !== 0) ticks += Number(f[11]) + Number(f[12]); // PF_KTHREAD
    } catch {
      // ended since the listing
    }
  }
  return ticks * TICK_MS;
}

/** This runner's CPU ms so far, with its children's once they ended and were reaped (each wrk run). */
function benchMs() {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * TICK_MS;
}

/** The counters a round is judged by, at one instant. */
export function sample(pid) {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    at: performance.now(),
    cpuMs: cpuMs(pid),
    mainMs: threadMs(pid, pid), // the event loop's thread; the rest is V8's GC and compiler threads, libuv's pool
    syscalls: field(io, 'syscr') + field(io, 'syscw'),
    // the main thread's: each is the event loop finding nothing to do and sleeping in epoll_wait
    sleeps: field(status, 'voluntary_ctxt_switches'),
    // the main thread's: each is the scheduler taking the core from it while it had work
    preemptions: field(status, 'nonvoluntary_ctxt_switches'),
    cores: cores(),
    benchMs: benchMs() + kernelThreadsMs(),
  };
}

/** Between two samples, over `requests` answered: shares of a core in %, and costs per event. */
export function between(a, b, requests) {
  const wall = b.at - a.at;
  const share = (i, key) => (100 * (b.cores[i][key] - a.cores[i][key])) / wall;
  const busy = (i) => 100 - share(i, 'idle') - share(i, 'steal');
  const serverCpu = b.cpuMs - a.cpuMs;
  return {
    serverCpuPct: (100 * serverCpu) / wall,
    mainThreadPct: (100 * (b.mainMs - a.mainMs)) / wall,
    cpuMicrosPerEvent: (1000 * serverCpu) / requests,
    syscallsPerEvent: (b.syscalls - a.syscalls) / requests,
    sleepsPerEvent: (b.sleeps - a.sleeps) / requests,
    preemptionsPerSecond: ((b.preemptions - a.preemptions) * 1000) / wall,
    core0BusyPct: busy(0),
    core1BusyPct: b.cores.length > 1 ? busy(1) : Number.NaN,
    // core 0 busy beyond the server's own threads: other processes, and the kernel's network work
    core0OtherPct: busy(0) - (100 * serverCpu) / wall,
    // both cores' busy time beyond the server, wrk, this runner and the kernel's threads: other tenants of
    // the machine (100 = a core's worth)
    othersPct:
      b.cores.reduce((sum, _, i) => sum + busy(i), 0) - (100 * (serverCpu + b.benchMs - a.benchMs)) / wall,
    stealPct: b.cores.reduce((sum, _, i) => sum + share(i, 'steal'), 0),
  };
}

/** The most memory the process has held resident (VmHWM), in MiB. */
export function peakRssMiB(pid) {
  return field(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmHWM') / 1024;
}

/**
 * Over the next `ms`, in % of a core: other tenants' share of the machine (both cores' busy time beyond
 * this runner's, the kernel threads' and the (idle) server's) and the hypervisor's (steal, both cores).
 */
export async function othersOver(ms, pid) {
  const now = () => ({
    at: performance.now(),
    cores: cores(),
    benchMs: benchMs() + kernelThreadsMs(),
    cpuMs: cpuMs(pid),
  });
  const a = now();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = now();
  const wall = b.at - a.at;
  const sum = (of) => b.cores.reduce((total, core, i) => total + of(core, a.cores[i]), 0);
  const steal = sum((core, before) => core.steal - before.steal);
  const busy = sum((core, before) => wall - (core.idle - before.idle)) - steal;
  return {
    othersPct: (100 * (busy - (b.benchMs - a.benchMs) - (b.cpuMs - a.cpuMs))) / wall,
    stealPct: (100 * steal) / wall,
  };
}
