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

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const LEVELS: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50, silent: Infinity };

const noop = () => {};

/** A logger that drops everything: for tests, or when the host application logs on its own. */
export const silentLogger: Logger = { error: noop, warn: noop, info: noop, debug: noop };

/** One JSON object per line (pino's format, so the same tools read it), at or above `level`. */
export function jsonLogger(level: LogLevel = 'info', write: (line: string) => void = writeStderr): Logger {
  const threshold = LEVELS[level];
  const at = (name: Exclude<LogLevel, 'silent'>) => {
    const value = LEVELS[name];
    if (value < threshold) return noop;
    return (obj: object, msg?: string) => {
      write(`${JSON.stringify({ level: value, time: Date.now(), ...serialize(obj), msg })}\n`);
    };
  };
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}

function writeStderr(line: string): void {
  process.stderr.write(line);
}

// Errors have no enumerable own properties: JSON.stringify would log them as `{}`.
function serialize(obj: object): object {
  if (obj instanceof Error) return { err: errorFields(obj) };
  const err = (obj as { err?: unknown }).err;
  return err instanceof Error ? { ...obj, err: errorFields(err) } : obj;
}

function errorFields(err: Error): object {
  const code = (err as { code?: unknown }).code;
  return { type: err.name, message: err.message, code, stack: err.stack };
}

/** `log` with `fields` added to every line: a worker's lines carry its number. */
export function withFields(log: Logger, fields: object): Logger {
  const at = (write: (obj: object, msg?: string) => void) => (obj: object, msg?: string) =>
    write(obj instanceof Error ? { ...fields, err: obj } : { ...fields, ...obj }, msg);
  return {
    error: at(log.error.bind(log)),
    warn: at(log.warn.bind(log)),
    info: at(log.info.bind(log)),
    debug: at(log.debug.bind(log)),
  };
}
