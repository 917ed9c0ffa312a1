import { decodeBase64 } from './base64.ts';
import { parseJson } from './json.ts';

export type Settings = Readonly<Record<string, unknown>>;

const EMPTY: Settings = Object.freeze({});

/**
 * Decodes `X-Segment-Settings`: base64 of a JSON object with the customer's custom settings.
 * Absent → `{}`; anything but base64 of a JSON object → `undefined` (the pipeline answers 400).
 */
export function decodeSettings(header: string | string[] | undefined): Settings | undefined {
  if (header === undefined || header === '') return EMPTY;
  if (typeof header !== 'string') return undefined;
  const bytes = decodeBase64(header.trim());
  if (bytes === undefined) return undefined;
  const parsed = parseJson(bytes.toString('utf8'));
  if (
    !parsed.ok ||
    typeof parsed.value !== 'object' ||
    parsed.value === null ||
    Array.isArray(parsed.value)
  ) {
    return undefined;
  }
  return parsed.value as Settings;
}
