// The stages of the ablation ladder (ladder.mjs), in the pipeline's order; reading the body is below
// rung 0 (every rung reads it). Apart from ladder.mjs so that the runner names the rungs without loading
// the endpoint.
export const STAGES = ['parse', 'auth', 'settings', 'casing', 'validate', 'dedup', 'dispatch'];

/**
 * Events a slice: the pipeline benchmark takes its handlers in turn, this many events each (long enough,
 * ~0.15 s, for a handler's code and data to be warm; pipeline-group.mjs).
 */
export const SLICE = 2_500;

/** The rung names, bottom to top, as the tables show them. */
export const RUNG_NAMES = ['ladder: body read', ...STAGES.map((stage) => `ladder: + ${stage}`)];

/**
 * The pipeline benchmark's groups (pipeline.mjs), each measured in a process of its own; `reference` is
 * the handler each net is compared with. `target` is the comparison, as ../shared/bench/inject.mjs
 * makes it: the injector alone, the fastify anchor and ours.
 */
export const GROUPS = {
  target: { names: ['bare', 'fastify', 'ours'], reference: 'fastify' },
  // The least that any handler reading the event costs, against the same fastify app: the parse floor
  // (anchors/raw-json.mjs's work) through the injector, in a process of its own so that `target` stays
  // the three handlers; the least that one doing the contract's work costs (the contract floor,
  // contract-floor.mjs), and the same with a duplicate filter, as ours has.
  limit: {
    names: ['bare', 'parse floor', 'contract floor', 'contract floor + filter', 'fastify'],
    reference: 'fastify',
  },
  // `target` and `limit` again, each through plain-inject.mjs instead of light-my-request, whose
  // per-request closures keep each event's objects through the young collections (HISTORY.md, "The
  // injector's own garbage"): what the same handlers cost when their garbage dies young.
  control: {
    names: ['bare', 'fastify', 'ours', 'parse floor', 'contract floor', 'contract floor + filter'],
    reference: 'fastify',
    injector: 'plain',
  },
  // Through plain-inject.mjs: through light-my-request a step of ~1 µs was lost in rounds that swung by 5.
  ladder: { names: ['bare', ...RUNG_NAMES, 'ours'], reference: 'ours', injector: 'plain' },
  variants: {
    names: ['bare', 'ours', 'ours + metrics', 'ours, fastify plugin', 'ours, fetch handler'],
    reference: 'ours',
  },
  // Ours against the plainest handler that does the same contract's work with a duplicate filter (and
  // fastify beside), in the same slices: what ours' own machinery costs. Only with BENCH_FLOOR=1
  // (`BENCH_FLOOR=1 node bench/pipeline.mjs --group floor` runs it alone).
  floor: {
    names: ['bare', 'contract floor + filter', 'ours', 'fastify'],
    reference: 'contract floor + filter',
    only: 'BENCH_FLOOR',
  },
  // An A/B of two builds, only with BENCH_BASELINE (another checkout, built): this build's handler
  // against that one's, the same events in the same slices, through plain-inject.mjs (light-my-request's
  // garbage made its A/A swing ±15 %). Its net × the baseline's is the change's cost.
  ab: {
    names: ['bare', 'ours', 'ours, baseline'],
    reference: 'ours, baseline',
    only: 'BENCH_BASELINE',
    injector: 'plain',
  },
};
