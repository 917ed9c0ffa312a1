import { isUtf8 } from 'node:buffer';
import { decodeBase64 } from './base64.ts';
import { isPlainObject, parseJson } from './json.ts';

export type Settings = Readonly<Record<string, unknown>>;

const EMPTY: Settings = Object.freeze({});

/**
 * Decodes `X-Segment-Settings`: base64 of a JSON object with the customer's custom settings.
 * Absent → `{}`; anything but base64 of a UTF-8 JSON object → `undefined` (the pipeline answers 400).
 */
export function decodeSettings(header: string | string[] | undefined): Settings | undefined {
  if (header === undefined || header === '') return EMPTY;
  if (typeof header !== 'string') return undefined;
  return decode(header);
}

/**
 * Segment sends the same header with every event of a customer: each handler decodes it once and keeps
 * what it decoded, bounded, emptied whole when full (cheaper than evicting from a Map's front).
 */
export class SettingsCache {
  readonly #decoded = new Map<string, Settings>();

  decode(header: string | string[] | undefined): Settings | undefined {
    if (typeof header !== 'string' || header === '') return decodeSettings(header);
    const cached = this.#decoded.get(header);
    if (cached !== undefined) return cached;
    const settings = decode(header);
    if (settings !== undefined) {
      if (this.#decoded.size >= CACHE_ENTRIES) this.#decoded.clear();
      this.#decoded.set(header, settings);
    }
    return settings;
  }
}

const CACHE_ENTRIES = 1024; // distinct settings headers (customers) kept decoded

function decode(header: string): Settings | undefined {
  const bytes = decodeBase64(header.trim());
  // Bytes that are not UTF-8 are refused, as in a body, rather than read with replacement characters.
  if (bytes === undefined || !isUtf8(bytes)) return undefined;
  const parsed = parseJson(bytes.toString('utf8'));
  if (!parsed.ok || !isPlainObject(parsed.value)) {
    return undefined;
  }
  // Shared by every event with this header: frozen all the way down, so no handler can change another's.
  return deepFreeze(parsed.value) as Settings;
}

function deepFreeze(value: unknown): unknown {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
