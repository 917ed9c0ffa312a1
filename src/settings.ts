import { isUtf8 } from 'node:buffer';
import { decodeBase64 } from './base64.ts';
import { ERRORS } from './errors.ts';
import { isPlainObject, parseJson } from './json.ts';
import { SettingsGuard, type SettingsSchema } from './settings-schema.ts';

export type Settings = Readonly<Record<string, unknown>>;

/**
 * What the options need beside HandlerOptions when the handlers type their settings (`S` narrower than
 * any settings, its fields optional or not): the schema that checks them. Without it they would reach
 * the handlers unchecked as S.
 */
export type CheckedSettings<S> =
  Settings extends Required<S> ? unknown : { readonly settingsSchema: SettingsSchema<S> };

const EMPTY: Settings = Object.freeze({});

/** Whether a request carries settings: an `X-Segment-Settings` header that is there and not empty. */
export const settingsSent = (header: string | string[] | undefined): boolean =>
  header !== undefined && header !== '';

/**
 * Decodes `X-Segment-Settings`: base64 of a JSON object with the customer's custom settings.
 * Absent or empty (a header with no value, as some proxies pass on "no settings") → `{}`; anything but
 * base64 of a UTF-8 JSON object → `undefined` (the pipeline answers 400).
 */
export function decodeSettings(header: string | string[] | undefined): Settings | undefined {
  if (!settingsSent(header)) return EMPTY;
  if (typeof header !== 'string') return undefined;
  return decode(header);
}

/**
 * Segment sends the same header with every event of a customer: each handler decodes it once and keeps
 * what it decoded, bounded by count and by the memory it takes (estimated from the header's length and
 * its number of values), emptied whole when full (cheaper than evicting from a Map's front). Without the
 * second bound, 16 KB headers of tiny values (`[{},{},...]`, ~80 bytes of heap each for 3 bytes of
 * JSON) from one valid key held ~300 MB in 1,024 entries.
 */
export class SettingsCache {
  readonly #decoded = new Map<string, Settings>();
  #bytes = 0;
  /** The header last decoded and its settings: a customer's events come in runs, each read again. */
  #lastHeader = '';
  #last: Settings | undefined;
  readonly #guard: SettingsGuard | undefined;

  constructor(schema?: SettingsSchema<unknown>) {
    this.#guard = schema === undefined ? undefined : new SettingsGuard(schema);
  }

  /** The settings of `header`; `undefined` when it is not base64 of a JSON object; throws the 400 of a schema. */
  decode(header: string | string[] | undefined): Settings | undefined {
    const settings = this.#decode(header);
    if (settings !== undefined) this.#guard?.admit(settings);
    return settings;
  }

  #decode(header: string | string[] | undefined): Settings | undefined {
    if (typeof header !== 'string' || header === '') return decodeSettings(header);
    // Compared as text, which a Map lookup ends with too, without hashing the header first.
    if (header === this.#lastHeader) return this.#last;
    const cached = this.#decoded.get(header);
    if (cached !== undefined) return this.#remember(header, cached);
    const decoded = parse(header);
    if (decoded === undefined) return undefined;
    // The header twice: kept as the key, and about as much again in the strings decoded from it.
    const bytes = 2 * header.length + BYTES_PER_VALUE * decoded.values;
    if (this.#decoded.size >= CACHE_ENTRIES || this.#bytes + bytes > CACHE_BYTES) {
      this.#decoded.clear();
      this.#bytes = 0;
    }
    this.#decoded.set(header, decoded.settings);
    this.#bytes += bytes;
    return this.#remember(header, decoded.settings);
  }

  #remember(header: string, settings: Settings): Settings {
    this.#lastHeader = header;
    this.#last = settings;
    return settings;
  }
}

const CACHE_ENTRIES = 1024; // distinct settings headers (customers) kept decoded
const CACHE_BYTES = 8 * 1024 * 1024; // the memory they may take, estimated
const BYTES_PER_VALUE = 80; // V8's heap for a parsed JSON value and its slot (`{}` in an array: ~78)

function decode(header: string): Settings | undefined {
  return parse(header)?.settings;
}

/** The settings of a header, and how many values they hold (for what keeping them costs). */
function parse(header: string): { readonly settings: Settings; readonly values: number } | undefined {
  const bytes = decodeBase64(header.trim());
  // Bytes that are not UTF-8 are refused, as in a body, rather than read with replacement characters.
  if (bytes === undefined || !isUtf8(bytes)) return undefined;
  const parsed = parseJson(bytes.toString('utf8'));
  if (!parsed.ok || !isPlainObject(parsed.value)) {
    return undefined;
  }
  // Shared by every event with this header: frozen all the way down, so no handler can change another's.
  return { settings: parsed.value as Settings, values: deepFreeze(parsed.value) };
}

/** Freezes `value` and everything in it; answers how many values that is, `value` included. */
function deepFreeze(value: unknown): number {
  let values = 1;
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) values += deepFreeze(child);
  }
  return values;
}

const NOT_JSON = 'Request body is not valid JSON';

/**
 * Why `header` is not settings, for the 400's message: said as a body's same fault is (json.ts). Decoded
 * again, on the refusal's path only. Node joins a header sent twice with ", ", which no base64 holds.
 */
export function settingsProblem(header: string | string[] | undefined): string {
  const repeated = (text: string) => text.split(',').every((part) => decodeBase64(part.trim()) !== undefined);
  if (typeof header !== 'string' || (header.includes(',') && repeated(header))) {
    return 'X-Segment-Settings is sent more than once: send it once';
  }
  const bytes = decodeBase64(header.trim());
  const why = (what: string) => `${ERRORS.SEG_SETTINGS_INVALID.message}: ${what}`;
  if (bytes === undefined) return why('it is not base64');
  if (!isUtf8(bytes)) return why('its bytes are not UTF-8');
  const parsed = parseJson(bytes.toString('utf8'));
  if (!parsed.ok) {
    // Not JSON.parse's own words: they quote the text, and settings may hold the customer's secrets.
    if (parsed.message.startsWith(NOT_JSON)) return why('it decodes to text that is not valid JSON');
    return why(parsed.message.replace(/^Request body contains/, 'it holds').replace(/^Request body/, 'it'));
  }
  const value = parsed.value;
  return why(
    `it decodes to ${Array.isArray(value) ? 'an array' : value === null ? 'null' : `a ${typeof value}`}, not an object`,
  );
}

/** Settings as every sink stores them with each event: their JSON, and its length in UTF-8 bytes. */
export interface WrittenSettings {
  readonly json: string;
  readonly bytes: number;
}

const written = new WeakMap<object, WrittenSettings>();

/**
 * `settings` as JSON, written once for each settings object (one per distinct X-Segment-Settings header,
 * frozen as decoded): the stores write it with each event, and the pipeline measures it against the budget.
 */
export function writtenSettings(settings: Settings): WrittenSettings {
  let done = written.get(settings);
  if (done === undefined) {
    const json = JSON.stringify(settings);
    done = { json, bytes: Buffer.byteLength(json) };
    written.set(settings, done);
  }
  return done;
}
