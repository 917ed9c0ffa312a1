// How `segment-endpoint test` shows what it sent and what it was answered: an endpoint's text on one line
// of the report, bodies cut short, credentials never whole.

const BODY_SHOWN = 200; // characters of each body printed

/**
 * An endpoint's text as one line of this report: control characters shown escaped (`\n`, `\u001b`), so
 * that a message cannot write lines of its own (a forged summary) or drive the terminal.
 */
export function printable(text: string): string {
  let out = '';
  for (const char of text) {
    const code = char.charCodeAt(0);
    if (code < 0x20) out += JSON.stringify(char).slice(1, -1);
    else if (code >= 0x7f && code <= 0x9f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += char;
  }
  return out;
}

/** The `message` of a JSON error body, which Segment shows the customer. */
export function messageOf(text: string): string | undefined {
  try {
    const message = (JSON.parse(text) as { message?: unknown } | null)?.message;
    return typeof message === 'string' ? message : undefined;
  } catch {
    return undefined;
  }
}

export function truncate(text: string): string {
  return text.length <= BODY_SHOWN ? text : `${text.slice(0, BODY_SHOWN)}…`;
}

/** A credential is never printed whole: the scheme word says enough. */
export function shown(name: string, value: string): string {
  return name.toLowerCase() === 'authorization' ? `${value.split(' ')[0]} …` : value;
}
