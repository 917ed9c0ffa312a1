// Node's base64 decoder skips characters outside the alphabet and stops at the first `=`, so
// `Buffer.from('a$b=c', 'base64')` quietly decodes to something. A header that is not exactly base64
// must be refused, not half-read: check the alphabet and padding first.
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$/;

/** Decodes standard base64 (padding optional); `undefined` for anything that is not exactly that. */
export function decodeBase64(text: string): Buffer | undefined {
  return BASE64_RE.test(text) ? Buffer.from(text, 'base64') : undefined;
}
