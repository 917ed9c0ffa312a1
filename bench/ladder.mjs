// The ablation ladder: the event pipeline's stages composed one on top of the other from the shipped
// modules (dist/), as plain (req, res) handlers. Rung N runs the first N stages after reading the body;
// what a rung costs above the one below is what its stage costs. Used by pipeline.mjs (through inject)
// and by ladder-server.mjs (under wrk, `make bench-ladder`).
import { STAGES } from './stages.mjs';

export { RUNG_NAMES } from './stages.mjs';

const dist = new URL('../dist/', import.meta.url);
const load = (name) => import(new URL(name, dist).href);
const [
  { silentLogger },
  { checkBodyHeaders, parseBody },
  { readBody },
  { Deadlines },
  { keyAuthenticator },
  { CredentialsCache },
  { SettingsCache },
  { normalizeEvent },
  { eventValidators },
  { MemoryIdempotencyStore },
  { once },
  { createDispatcher },
  { EventContext },
  { sendStatus },
] = await Promise.all(
  [
    'index.js',
    'body.js',
    'reader.js',
    'deadlines.js',
    'auth.js',
    'credentials.js',
    'settings.js',
    'normalize.js',
    'validate.js',
    'idempotency.js',
    'once.js',
    'dispatch.js',
    'context.js',
    'respond.js',
  ].map(load),
);

const noop = () => {};
const HANDLERS = Object.fromEntries(
  ['identify', 'track', 'page', 'screen', 'group', 'alias', 'delete'].map((t) => [t, noop]),
);
const LIMIT = 512 * 1024;

/** The handler of rung `depth`: the body read, then the first `depth` stages, then a 200. */
export function rung(depth, apiKey) {
  const has = (stage) => STAGES.indexOf(stage) < depth;
  const credentials = new CredentialsCache(keyAuthenticator([apiKey]), 4000);
  const settingsCache = new SettingsCache();
  const validators = eventValidators();
  const idempotency = new MemoryIdempotencyStore();
  const { dispatch } = createDispatcher(HANDLERS, 4000);
  const deadlines = new Deadlines(10_000);
  const refuse = (res) => sendStatus(res, 400, true);

  function stages(req, res, text) {
    const event = has('parse') ? parseBody(text, 64, req.headers['content-type']).value : undefined;
    const { apiKey: key } = has('auth') ? credentials.of(req) : {};
    const settings = has('settings') ? settingsCache.decode(req.headers['x-segment-settings']) : undefined;
    const normalized = has('casing') ? normalizeEvent(event) : event;
    if (has('validate') && validators[normalized.type](normalized) !== undefined) throw new Error('invalid');
    const run = () =>
      has('dispatch')
        ? dispatch(
            normalized.type,
            normalized,
            new EventContext(
              key,
              settings,
              req.headers,
              silentLogger,
              normalized.type,
              normalized.messageId,
              event,
              text,
            ),
          )
        : 200;
    const status = has('dedup') ? once(idempotency, `${key}\n${normalized.messageId}`, run) : run();
    sendStatus(res, status === 'duplicate' ? 200 : status, false);
  }

  return (req, res) => {
    try {
      const coding = checkBodyHeaders(req, LIMIT);
      const sink = {
        bodyRead(text) {
          try {
            stages(req, res, text);
          } catch {
            refuse(res);
          }
        },
        bodyFailed: () => refuse(res),
      };
      readBody(req, LIMIT, deadlines, coding, sink);
    } catch {
      refuse(res);
    }
  };
}
