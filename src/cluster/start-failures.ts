// When the primary of --workers stops rather than replace workers for ever: a configuration that does not
// start. Before any worker has served, one worker's refusal says so (every worker would say the same);
// after, MAX_IN_A_ROW workers in a row that die before listening, with none serving (what failed may have
// passed: a database a module reaches). Failures while another worker serves do not count.

export const MAX_IN_A_ROW = 5;

export class StartFailures {
  #inARow = 0;
  #served = false;

  /** Whether a worker has listened since the primary started. */
  get served(): boolean {
    return this.#served;
  }

  /** A worker listens. */
  listening(): void {
    this.#inARow = 0;
    this.#served = true;
  }

  /** A worker died before listening: whether the primary stops (`serving`: whether another serves). */
  failed(serving: boolean): boolean {
    return !serving && ++this.#inARow >= MAX_IN_A_ROW;
  }
}
