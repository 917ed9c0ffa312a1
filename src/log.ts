/**
 * The logger the endpoint writes to: the call shape of pino (`log.error({ err }, 'message')`), so a pino
 * instance can be passed as is. Never given an API key or an Authorization header: only fingerprints.
 */
export interface Logger {
  error(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/**
 * The logger a handler is given (`ctx.log`): the endpoint's, each line naming the event, which also takes
 * pino's other two forms, a message alone (`ctx.log.info('synced')`) and an error first.
 */
export interface EventLogger extends Logger {
  error(obj: object | string, msg?: string): void;
  warn(obj: object | string, msg?: string): void;
  info(obj: object | string, msg?: string): void;
  debug(obj: object | string, msg?: string): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const LEVELS: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: Infinity };
const LEVEL_NAMES = Object.keys(LEVELS)
  .join(', ')
  .replace(/, (?=\w+$)/, ' or '); // for a refusal

/** A level a line is written at. */
export type Level = keyof Logger;

const noop = () => {};

/** A logger's four methods, each made by `at` for its level. */
const eachLevel = <F>(at: (level: Level) => F): Record<Level, F> => ({
  error: at('error'),
  warn: at('warn'),
  info: at('info'),
  debug: at('debug'),
});

/** The loggers made in this module: a level whose method is `noop` drops its lines for sure. */
const madeHere = new WeakSet<Logger>();

const made = <T extends Logger>(log: T): T => {
  madeHere.add(log);
  return log;
};

/** A logger that drops everything: for tests, or when the host application logs on its own. */
export const silentLogger: Logger = made(eachLevel(() => noop));

/**
 * Whether `log` drops lines of `level` for sure (one of this module's loggers, its method for the level
 * still the no-op it was made with), so that a line's fields need not be worked out. A host's logger is
 * always asked, even one built of our methods, as is one of ours whose method a test has replaced.
 */
export const drops = (log: Logger, level: Level): boolean => madeHere.has(log) && log[level] === noop;

/** The loggers made here that never throw: the endpoint need not guard them (neverThrowing). */
const neverThrow = new WeakSet<Logger>([silentLogger]);

/**
 * The logger as the endpoint calls it: a line the host's logger cannot write (a value it cannot
 * serialise, a stream that failed) is dropped rather than thrown into the request the line was about.
 * Each line asks the host's logger anew (pino changes its methods with its level); a level that one of
 * ours beneath (a worker's, with its number) drops stays dropped for sure.
 */
export function neverThrowing(log: Logger): Logger {
  if (neverThrow.has(log)) return log;
  const at = (level: Level) =>
    drops(log, level)
      ? noop
      : (...args: [obj: object, msg?: string]): void => {
          try {
            log[level](...args);
          } catch {}
        };
  const guarded = eachLevel(at);
  return madeHere.has(log) ? made(guarded) : guarded;
}

/** One JSON object per line (pino's format, so the same tools read it), at or above `level`. */
export function jsonLogger(level: LogLevel = 'info', write: (line: string) => void = writeStderr): Logger {
  // Unknown (pino's 'fatal', an upper-case name), the threshold would be undefined: every line written.
  if (typeof level !== 'string' || !Object.hasOwn(LEVELS, level)) {
    throw new RangeError(`level must be ${LEVEL_NAMES}, got ${String(level).slice(0, 64)}`);
  }
  const threshold = LEVELS[level];
  const at = (name: Level) => {
    const value = LEVELS[name];
    if (value < threshold) return noop;
    return (obj: object, msg?: string) => {
      try {
        write(`${lineOf(value, obj, msg)}\n`);
      } catch {} // a line that cannot be written is lost, never thrown into what it is about
    };
  };
  const log = made(eachLevel(at));
  neverThrow.add(log);
  return log;
}

function writeStderr(line: string): void {
  process.stderr.write(line);
}

/**
 * One line, whatever `obj` holds: logging never throws, since a line is often written about a value the
 * endpoint does not control (what a partner's handler threw, what it passed to `ctx.log`). Only when
 * plain JSON fails: a BigInt is written as its digits, and an object inside itself (a cycle) as
 * "[Circular]"; fields that cannot be read at all (a getter or `toJSON` that throws, a hostile Proxy)
 * leave the line with its message and `logError`.
 */
function lineOf(level: number, obj: object, msg: string | undefined): string {
  try {
    const entry = { level, time: Date.now(), ...serialize(obj), msg };
    let line: string;
    try {
      line = JSON.stringify(entry);
    } catch {
      line = JSON.stringify(entry, safeReplacer());
    }
    // A UTF-16 unit is 3 bytes of UTF-8 at most: only a longer line needs counting.
    return line.length <= MAX_LINE / 3 || Buffer.byteLength(line) <= MAX_LINE
      ? line
      : cutLine(level, entry, line);
  } catch (err) {
    const logError = `the fields of this line could not be written: ${readable(() => String(err))}`;
    return JSON.stringify({ level, time: Date.now(), msg, logError });
  }
}

/**
 * A line's most bytes: a partner's error of 200,000 characters was a line of 400,000 (its stack too). An
 * error's message and stack are cut to `MAX_ERROR_TEXT` each first, which keeps the line's fields.
 */
const MAX_LINE = 16 * 1024;
const MAX_ERROR_TEXT = 4 * 1024;
const CUT_MSG = 1024;
const CUT_HEAD = 2 * 1024; // at most twice as long again escaped, and 3 bytes a character

/**
 * A line too long still, cut: its small fields (numbers, true or false, short strings under short names:
 * the level, time, source, status), its error's type and code, its message cut, how long it was and how
 * it began. Past the limit even so (thousands of small fields), its level, time, message and start only.
 */
function cutLine(level: number, entry: Record<string, unknown>, line: string): string {
  const kept: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(entry)) {
    const isSmall = typeof value === 'string' ? value.length <= SMALL_TEXT : typeof value !== 'object';
    if (isSmall && name.length <= SMALL_TEXT && name !== 'msg') kept[name] = value;
  }
  const err = entry.err as { type?: unknown; code?: unknown } | undefined;
  if (typeof err === 'object' && err !== null) kept.err = { type: small(err.type), code: small(err.code) };
  const msg = typeof entry.msg === 'string' ? entry.msg : undefined;
  const cut = `${Buffer.byteLength(line)} bytes, over the ${MAX_LINE} a line may hold: its first characters in head`;
  const written = JSON.stringify(
    { ...kept, level, msg: msg?.slice(0, CUT_MSG), cut, head: line.slice(0, CUT_HEAD) },
    safeReplacer(),
  );
  if (Buffer.byteLength(written) <= MAX_LINE) return written;
  return JSON.stringify({ level, time: Date.now(), msg: msg?.slice(0, 256), cut, head: line.slice(0, 512) });
}

/** A value kept in a cut line if small, else how long it was. */
const small = (value: unknown): unknown =>
  typeof value === 'string' && value.length > SMALL_TEXT ? `${value.length} characters` : value;

const SMALL_TEXT = 256;

/** `text` up to `MAX_ERROR_TEXT` characters, and how many more there were. */
const capped = (text: unknown): unknown =>
  typeof text === 'string' && text.length > MAX_ERROR_TEXT
    ? `${text.slice(0, MAX_ERROR_TEXT)}… (${text.length - MAX_ERROR_TEXT} more characters)`
    : text;

/**
 * For JSON.stringify: BigInts as their digits, an object inside itself as "[Circular]". `this` is the
 * object that holds `value`: the objects from the root down to it are the ancestors kept, and an object
 * met again elsewhere (shared by two fields) is written again.
 */
function safeReplacer(): (this: unknown, key: string, value: unknown) => unknown {
  const ancestors: unknown[] = [];
  return function (this: unknown, _key, value) {
    if (typeof value === 'bigint') return value.toString();
    if (typeof value !== 'object' || value === null) return value;
    while (ancestors.length > 0 && ancestors[ancestors.length - 1] !== this) ancestors.pop();
    if (ancestors.includes(value)) return '[Circular]';
    ancestors.push(value);
    return value;
  };
}

// Errors have no enumerable own properties: JSON.stringify would log them as `{}`.
function serialize(obj: object): object {
  if (obj instanceof Error) return { err: errorFields(obj) };
  const err = (obj as { err?: unknown }).err;
  return err instanceof Error ? { ...obj, err: errorFields(err) } : obj;
}

/**
 * An error's fields, each read on its own: a getter that throws costs only its own field. Its `cause`
 * too, an error's own fields a few deep: what an endpoint's generic 500 says of why it happened.
 */
function errorFields(err: Error, depth = 0): object {
  const cause = readable(() => err.cause);
  return {
    type: readable(() => err.name),
    message: capped(readable(() => err.message)),
    code: readable(() => (err as { code?: unknown }).code),
    stack: capped(readable(() => err.stack)),
    ...(cause instanceof Error && depth < MAX_CAUSES ? { cause: errorFields(cause, depth + 1) } : {}),
  };
}

const MAX_CAUSES = 3;

function readable(read: () => unknown): unknown {
  try {
    return read();
  } catch {
    return '[unreadable]';
  }
}

/**
 * `log` with `fields` first in every line's object (a worker's number, an event's source): what the caller
 * passes comes after, and wins. pino's other two forms are taken as pino takes them: an error first is
 * the line's `err`, and a message alone (what a handlers module in JavaScript may write) its message.
 */
export function withFields(log: Logger, fields: object): EventLogger {
  const at = (level: Level) => {
    // A level that `log` drops stays dropped for sure (see drops).
    if (drops(log, level)) return noop;
    const write = log[level].bind(log);
    return (obj: object | string, msg?: string) => {
      if (typeof obj === 'string') write({ ...fields }, obj);
      else write(obj instanceof Error ? { ...fields, err: obj } : { ...fields, ...obj }, msg);
    };
  };
  return made(eachLevel(at));
}
