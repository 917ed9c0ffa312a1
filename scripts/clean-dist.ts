import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

// Empties dist/ of what the library's build writes (tsc's outputs, the CLI in one file) before it writes
// them again: a source renamed or removed would otherwise leave its old outputs there, for `npm pack` to
// ship. The single-file bundle and the single executable (`make dist`, `make sea`) are left alone.

const DIST = join(import.meta.dirname, '..', 'dist');
const KEPT = /^(?:segment-endpoint\b|sea$)/;

for (const name of existsSync(DIST) ? readdirSync(DIST) : []) {
  if (!KEPT.test(name)) rmSync(join(DIST, name), { recursive: true, force: true });
}
