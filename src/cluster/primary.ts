import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import type { Signals } from '../cli.ts';
import type { CliConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { OPTIONS } from '../option-table.ts';
import { ConfigurationFiles } from './configuration-files.ts';
import { isOurs, type Outgoing, sendTo as send, type ToPrimary, WORKER_VARIABLE } from './messages.ts';
import { chosenPort, portVariable } from './port.ts';
import { backoffMs, killAll, newSlot, type Slot, serving } from './slot.ts';
import { StartFailures } from './start-failures.ts';
import { StartLine } from './start-line.ts';
import { Totals } from './totals.ts';
import { Watchdog } from './watchdog.ts';

// The primary of --workers N: it serves nothing itself. It forks N workers that share the listening
// socket (node:cluster), gives them the TLS session ticket keys (a client resumes its session on any of
// them) and rotates them, replaces a worker that dies, passes SIGTERM and SIGHUP on, sums their counts.

const TICKET_ROTATION_MS = 12 * 60 * 60 * 1000; // 12 h: a session resumes across workers for this long at most
const STABLE_MS = 10_000; // 10 s: a worker up this long started well; its number's backoff starts over
const DRAIN_MARGIN_MS = 5_000; // 5 s past --shutdown-timeout before workers still running are killed

/** Runs the workers until SIGTERM or SIGINT; resolves with the exit code (0 once every worker drained). */
export async function runPrimary(
  config: CliConfig,
  argv: readonly string[],
  log: Logger,
  signals: Signals,
  files: Map<string, Buffer>,
): Promise<number> {
  const fileStore = config.handlers === undefined && config.postgres === undefined;
  // Every worker's files (those of workers a smaller --workers no longer starts too) before any starts.
  const env = fileStore ? await (await import('../sinks/sink.ts')).repairStoreFiles(config.out, log) : {};
  cluster.setupPrimary({ args: [...argv] });
  return new Primary(config, log, files, { ...env, ...portVariable(await chosenPort(config)) }).run(signals);
}

class Primary {
  readonly #config: CliConfig;
  readonly #log: Logger;
  readonly #slots: Slot[] = [];
  readonly #totals = new Totals(this.#slots);
  readonly #watchdog: Watchdog;
  #keys = randomBytes(48);
  readonly #startFailures: StartFailures;
  #stopping = false;
  #gaveUp = false;
  readonly #startLine: StartLine;
  /** 1 once a worker failed to drain cleanly, or none started. */
  #exitCode = 0;
  #done: (code: number) => void = () => {};
  readonly #files: ConfigurationFiles;
  /** What every worker is started with besides its number: the port chosen for `--port 0`, the files measured. */
  readonly #env: Record<string, string>;

  constructor(config: CliConfig, log: Logger, files: Map<string, Buffer>, env: Record<string, string>) {
    this.#config = config;
    this.#log = log;
    this.#startLine = new StartLine(this.#slots, () => this.#stopping, log);
    this.#files = new ConfigurationFiles(files, config);
    this.#startFailures = new StartFailures(log, config.workers, (number) => this.#retry(number));
    this.#watchdog = new Watchdog(this.#slots, log, () => this.#startLine.print());
    this.#env = env;
  }

  run(signals: Signals): Promise<number> {
    return new Promise((done) => {
      const rotation = setInterval(() => this.#rotate(), TICKET_ROTATION_MS);
      this.#done = (code) => {
        clearInterval(rotation);
        this.#watchdog.stop();
        done(code);
      };
      for (let number = 1; number <= this.#config.workers; number++) {
        const slot = newSlot(number);
        this.#slots.push(slot);
        this.#fork(slot);
      }
      signals.onSignal = (signal) => this.#stop(signal);
      signals.onReload = () => this.#reload();
      // One received while the configuration was read: the renewal it announced may have come after.
      if (signals.reloadEarly !== undefined) this.#reload();
      if (signals.early !== undefined) this.#stop(signals.early);
    });
  }

  #fork(slot: Slot): void {
    slot.restart = undefined;
    const worker = cluster.fork({ ...this.#env, [WORKER_VARIABLE]: String(slot.number) });
    const now = performance.now();
    // Watched from now (Watchdog): a worker held before it listens is said, and not waited for.
    Object.assign(slot, { worker, startedAt: now, listening: false, answeredAt: now, heldAtStart: false });
    worker.on('message', (message: unknown) => {
      if (!isOurs<ToPrimary>(message)) return;
      try {
        this.#message(slot, worker, message);
      } catch (err) {
        // Not what a worker of ours sends (a --handlers module may use the channel too): ignored.
        this.#log.warn({ err, worker: slot.number }, 'a message from a worker could not be read');
      }
    });
    worker.on('exit', (code, signal) => this.#exited(slot, worker, code, signal));
  }

  #message(slot: Slot, worker: Worker, message: ToPrimary): void {
    switch (message.se) {
      case 'files?':
        send(worker, this.#files.all());
        break;
      case 'tickets?': {
        send(worker, { se: 'tickets', keys: this.#keys.toString('base64') });
        // A drain or reload sent while it was loading its modules reached no listener: it is told again.
        if (this.#stopping) send(worker, { se: 'drain' });
        const reloaded = this.#files.reloadedSince(slot.startedAt);
        if (reloaded !== undefined) send(worker, reloaded);
        break;
      }
      case 'listening':
        Object.assign(slot, { listening: true, answeredAt: performance.now() });
        this.#log.info({ worker: slot.number, pid: worker.process.pid }, 'worker listening');
        this.#startFailures.listening();
        this.#startLine.listening(message);
        break;
      case 'refused':
        this.#refused(slot, worker, message.line);
        break;
      case 'gather':
        this.#totals.gather(slot, worker, message.id, message.snapshot);
        break;
      case 'snapshot':
        this.#totals.answered(message.id, slot.number, message.snapshot);
        break;
      case 'counts':
        this.#totals.kept(slot, message.snapshot, this.#log);
        break;
      case 'pong':
        Object.assign(slot, { answeredAt: performance.now(), heldAtStart: false });
        break;
    }
  }

  #exited(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    this.#totals.retire(slot);
    const live = this.#slots.filter((s) => s.worker !== undefined).length;
    if (this.#stopping) {
      // One that never listened held no event: its failure to start (or our kill that answers it) during
      // the drain is no failure of the drain, unless none ever listened (a start that failed).
      if (code !== 0 && (slot.listening || !this.#startFailures.served)) this.#exitCode = 1;
      if (live === 0) {
        this.#log.info({ exitCode: this.#exitCode }, 'every worker stopped');
        this.#done(this.#exitCode);
      }
      return;
    }
    // Refused before any worker served: it waits for the others (StartFailures), started again once one listens.
    if (this.#startFailures.waits(slot.number)) return;
    const reason = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
    slot.failures = performance.now() - slot.startedAt >= STABLE_MS ? 0 : slot.failures + 1;
    // Replaced (the backoff reaches 10 s, each death logged below) unless workers keep failing to start
    // with none serving (StartFailures): a worker that served is replaced whatever failed meanwhile.
    if (!slot.listening) {
      slot.failedToStart = true;
      const died = { worker: slot.number, code, signal };
      if (this.#startFailures.failed(serving(this.#slots), died)) return void this.#giveUp();
    }
    const delay = backoffMs(slot.failures);
    this.#log.error(
      { worker: slot.number, pid: worker.process.pid, code, signal, restartInMs: delay },
      `worker ${slot.number} ${reason}: starting another`,
    );
    slot.restart = setTimeout(() => this.#fork(slot), delay);
    this.#startLine.print(); // after the line that says why this one did not start
  }

  /** A worker cannot start (the line one process would print): said at once, or waits (StartFailures). */
  #refused(slot: Slot, worker: Worker, line: string): void {
    worker.process.kill('SIGKILL');
    slot.failedToStart = true;
    // Once given up: said once, by the first refusal (the others were under way with it).
    if (!this.#gaveUp && this.#startFailures.refused(slot.number, line, this.#stopping)) this.#giveUp();
  }

  /** A refusal that waited, said (StartFailures): started again. */
  #retry(number: number): void {
    const slot = this.#slots[number - 1] as Slot;
    slot.failures++;
    // Its exit not in yet, it is replaced as any worker that died (#exited).
    if (slot.worker === undefined && !this.#stopping) {
      slot.restart = setTimeout(() => this.#fork(slot), backoffMs(slot.failures));
    }
  }

  /** No worker is serving, and none would: every one killed, none replaced, exit 1. */
  #giveUp(): void {
    const refusal = this.#startFailures.givingUp();
    if (refusal !== undefined) process.stderr.write(refusal);
    this.#gaveUp = true;
    this.#stopping = true;
    this.#exitCode = 1;
    killAll(this.#slots);
    if (this.#slots.every((s) => s.worker === undefined)) this.#done(1);
  }

  /** The first signal drains every worker; a second one kills them. */
  #stop(signal: NodeJS.Signals): void {
    if (this.#stopping) {
      this.#log.warn({ signal }, 'second signal: killing the workers without waiting');
      killAll(this.#slots);
      this.#done(1);
      return;
    }
    this.#stopping = true;
    this.#watchdog.stop();
    for (const slot of this.#slots) clearTimeout(slot.restart);
    this.#log.info({ signal }, 'draining every worker');
    this.#broadcast({ se: 'drain' });
    if (this.#startFailures.stopping()) this.#exitCode = 1; // a start that failed
    if (this.#slots.every((s) => s.worker === undefined)) this.#done(this.#exitCode);
    const shutdownMs = this.#config.options.shutdownTimeoutMs ?? OPTIONS.shutdownTimeoutMs.default;
    setTimeout(() => {
      const pids = this.#slots.flatMap((slot) => slot.worker?.process.pid ?? []);
      this.#log.error({ pids }, 'workers still running past the shutdown timeout: killing them');
      killAll(this.#slots);
      this.#done(1);
    }, shutdownMs + DRAIN_MARGIN_MS).unref();
  }

  /** SIGHUP: every worker loads what the primary reloaded first (ConfigurationFiles). */
  #reload(): void {
    void this.#files.reload(this.#log).then((loaded) => {
      if (loaded === undefined) return;
      this.#log.info({}, `SIGHUP: every worker reloads ${loaded.what}`);
      this.#broadcast(loaded.message);
    });
  }

  #rotate(): void {
    this.#keys = randomBytes(48);
    this.#broadcast({ se: 'tickets', keys: this.#keys.toString('base64') });
    this.#log.info({}, 'TLS session ticket keys rotated');
  }

  #broadcast(message: Outgoing): void {
    for (const slot of this.#slots) if (slot.worker !== undefined) send(slot.worker, message);
  }
}
