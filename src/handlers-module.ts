import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { UsageError } from './config.ts';
import type { Handlers } from './dispatch.ts';
import { describeValue } from './errors.ts';
import { checkHandlers } from './option-checks.ts';
import type { Settings } from './settings.ts';
import { checkSettingsSchema, type SettingsSchema } from './settings-schema.ts';
import { EVENT_TYPES } from './types.ts';

// --handlers: the partner's module, loaded once at start. What cannot be one is refused before it is
// imported, and a module that would leave every event unhandled is refused after.

// A TypeScript module: node 20 loads one only through a loader (README, "--handlers"), which the single
// executable (scripts/sea.ts defines SEGMENT_ENDPOINT_SEA) does not run: node runs no --import there.
const TS_RE = /\.[cm]?ts$/;
declare const SEGMENT_ENDPOINT_SEA: true | undefined;
const TS_HINT =
  typeof SEGMENT_ENDPOINT_SEA === 'undefined'
    ? "a TypeScript module needs a loader: NODE_OPTIONS='--import tsx' (tsx installed where it runs from)"
    : "this binary runs no --import loader: compile it to .js (tsc, esbuild), or run segment-endpoint.mjs with NODE_OPTIONS='--import tsx'";

/** What --handlers gives: the default export, and the `settingsSchema` export when there is one. */
export interface HandlersModule {
  readonly handlers: Handlers;
  readonly settingsSchema: SettingsSchema<Settings> | undefined;
}

/** The module's exports, checked; a UsageError naming the file for what is wrong. */
export async function loadHandlers(file: string): Promise<HandlersModule> {
  checkModuleFile(file);
  let mod: { default?: unknown; settingsSchema?: unknown };
  // A top-level await that waits for nothing pending (no timer, socket or file) can never settle: the
  // event loop empties, and the process would end with nothing said and exit 0.
  let stuck: () => void = () => {};
  const never = new Promise<never>((_, reject) => {
    stuck = () =>
      reject(
        new UsageError(
          `--handlers: ${file} never finished loading: its top-level await waits for something that cannot happen`,
        ),
      );
  });
  process.once('beforeExit', stuck);
  // A worker's channel to its primary would keep the loop from emptying: not counted while it loads.
  process.channel?.unref();
  try {
    mod = await Promise.race([import(pathToFileURL(resolve(file)).href), never]);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const why = err instanceof Error ? err.message : describeValue(err);
    const unknown =
      (err as { code?: unknown } | null)?.code === 'ERR_UNKNOWN_FILE_EXTENSION' && TS_RE.test(file);
    const hint = unknown ? `; ${TS_HINT}` : '';
    throw new UsageError(`--handlers: cannot load ${file}: ${why}${hint}`);
  } finally {
    process.off('beforeExit', stuck);
    process.channel?.ref();
  }
  if (typeof mod.default !== 'object' || mod.default === null) {
    throw new UsageError(`--handlers: ${file} must export default { identify?, track?, ... }`);
  }
  let handlers: Handlers;
  try {
    handlers = checkHandlers(mod.default);
  } catch (err) {
    // Said of the module, not of the library's option: "--handlers ./h.mjs: identfy is not ...".
    const message = (err as Error).message;
    const said = message
      .replace(/^options\.handlers\./, '')
      .replace(/^options\.handlers/, 'its default export');
    throw new UsageError(`--handlers ${file}: ${said}`);
  }
  // Every event would be answered 501, which Segment does not retry: all of them lost, the endpoint healthy.
  if (!EVENT_TYPES.some((type) => typeof handlers[type] === 'function')) {
    throw new UsageError(
      `--handlers ${file}: handles no event type: export at least one of ${EVENT_TYPES.join(', ')}`,
    );
  }
  // The export itself: createHandler checks it again, and warns of a class's misspelt methods.
  return { handlers: mod.default as Handlers, settingsSchema: schemaOf(mod.settingsSchema, file) };
}

function schemaOf(value: unknown, file: string): SettingsSchema<Settings> | undefined {
  try {
    return checkSettingsSchema(value);
  } catch (err) {
    const said = (err as Error).message.replace(/^options\.settingsSchema/, 'its settingsSchema export');
    throw new UsageError(`--handlers ${file}: ${said}`);
  }
}

/**
 * A module is a regular file. A named pipe would hold the start in open() for good, beyond any signal
 * (the import's read runs on a thread that exit waits for); a device (/dev/null) is no module either. A
 * path that is not there is left to the import, which says so.
 */
function checkModuleFile(file: string): void {
  const stats = statSync(resolve(file), { throwIfNoEntry: false });
  if (stats !== undefined && !stats.isFile()) {
    throw new UsageError(`--handlers: ${file} is not a regular file: a module is loaded from a file`);
  }
}
