import { Chain, type Linked } from './chain.ts';

// Deadlines of one fixed length (a handler's body timeout, its handlers' timeout) for many short tasks
// at once. Every task lives as long, so the order they start in is the order they expire in: a list in
// that order, checked from its head on one interval timer, replaces a timer per task (a setTimeout and
// clearTimeout for every event showed in the profile, bench/README.md). A deadline fires up to a
// twentieth of its length late, and at most 250 ms late (the handler timeout's 4 s: by 4.2 s, inside
// Segment's 5). A deadline is judged after the loop has read what its sockets hold: when the loop was held
// past it (a long collection, a handler that computes), the timer's turn comes before the poll that reads
// what arrived meanwhile, and what came in time would be refused.

/** A task with a deadline: `expired` is called once if it is still on its list when the deadline passes. */
export abstract class Deadline implements Linked<Deadline> {
  due = 0;
  prev: Deadline | undefined;
  next: Deadline | undefined;
  list: Deadlines | undefined;

  abstract expired(): void;

  /** Takes the task off its list: its deadline no longer matters. */
  cancel(): void {
    this.list?.remove(this);
  }
}

export class Deadlines {
  readonly ms: number;
  readonly #tickMs: number;
  readonly #chain = new Chain<Deadline>();
  #timer: NodeJS.Timeout | undefined;
  /** A sweep is queued for after the loop's next poll (`tick`). */
  #queued = false;

  constructor(ms: number) {
    this.ms = ms;
    this.#tickMs = Math.min(250, Math.max(1, Math.ceil(ms / 20)));
  }

  add(task: Deadline): void {
    task.list?.remove(task); // on a list already: its deadline starts again, at the end of this one
    task.due = performance.now() + this.ms;
    task.list = this;
    this.#chain.push(task);
    // The timer runs while deadlines are pending, and only then (it stops when the list empties), so it
    // holds the process open exactly as long as a body is being read.
    this.#timer ??= setInterval(tick, this.#tickMs, this);
  }

  remove(task: Deadline): void {
    if (task.list !== this) return;
    task.list = undefined;
    this.#chain.remove(task);
  }

  /**
   * The interval's turn: when a deadline has passed, a sweep once the loop's next poll has run, of the
   * deadlines passed by now. Not of those that pass before the sweep runs: the loop may be held again in
   * between (a handler computing in that poll, a collection, an immediate queued ahead of the sweep), and
   * what arrives for them then is read only by the poll after the sweep.
   */
  tick(): void {
    const head = this.#chain.head;
    if (head === undefined) {
      this.sweep(); // stops the timer
      return;
    }
    const now = performance.now();
    if (!this.#queued && head.due <= now) {
      this.#queued = true;
      setImmediate(sweep, this, now);
    }
  }

  /** Fires every deadline that had passed by `now`. */
  sweep(now = performance.now()): void {
    this.#queued = false;
    for (let task = this.#chain.head; task !== undefined && task.due <= now; task = this.#chain.head) {
      this.remove(task);
      task.expired();
    }
    if (this.#chain.head === undefined && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

// The interval's turn comes in the loop's timers phase, the sweep it queues in the check phase after the
// poll: a request that completes in that poll leaves its list first.
function tick(deadlines: Deadlines): void {
  deadlines.tick();
}

function sweep(deadlines: Deadlines, now: number): void {
  deadlines.sweep(now);
}
