// The headers Segment sends with every event, as `segment-endpoint test` and `load` send them.

import type { TestCase } from './suite.ts';

export const base64 = (text: string) => Buffer.from(text).toString('base64');

/** X-Segment-Settings' value: base64 of the settings' JSON, text given as it is. */
export function settingsHeader(settings: Readonly<Record<string, unknown>> | string): string {
  return base64(typeof settings === 'string' ? settings : JSON.stringify(settings));
}

/** The headers Segment sends with every event, in its order; `settings` is X-Segment-Settings' value. */
export function segmentHeaders(apiKey: string, settings: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {
    Authorization: `Basic ${base64(`${apiKey}:`)}`,
    'Content-Type': 'application/json',
    'User-Agent': 'Segment.io/1.0',
    Accept: '*/*',
    'Cache-Control': 'no-cache',
  };
  if (settings !== undefined) headers['X-Segment-Settings'] = settings;
  return headers;
}

/** Segment's headers with the case's changes, and the body's length. */
export function caseHeaders(
  apiKey: string,
  settings: string | undefined,
  changes: TestCase['headers'],
  length: number,
): Record<string, string> {
  const headers = segmentHeaders(apiKey, settings);
  for (const [name, value] of Object.entries(changes ?? {})) {
    for (const key of Object.keys(headers)) if (key.toLowerCase() === name.toLowerCase()) delete headers[key];
    if (value !== null) headers[name] = value;
  }
  headers['Content-Length'] = String(length);
  return headers;
}
