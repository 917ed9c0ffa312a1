// The stages of the ablation ladder (ladder.mjs), in the pipeline's order; reading the body is below
// rung 0 (every rung reads it). Apart from ladder.mjs so that the runner names the rungs without loading
// the endpoint.
export const STAGES = ['parse', 'auth', 'settings', 'casing', 'validate', 'dedup', 'dispatch'];

/** The rung names, bottom to top, as the tables show them. */
export const RUNG_NAMES = ['ladder: body read', ...STAGES.map((stage) => `ladder: + ${stage}`)];
