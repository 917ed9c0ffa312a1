// What the fuzz generators share: the run's seed and a PRNG drawn from it per case, what a case is
// (raw bytes or a request, and the statuses it may be answered with), and the pieces requests are built of.
import { EVENT_TYPES } from '../../src/index.ts';
import { basic } from '../helpers.ts';

export const KEY = 'dev-key';
export const UNKNOWN_KEY = 'fuzz-key';
export const MAX_BODY = 512 * 1024; // the CLI's default --max-body-bytes
export const SEED =
  process.env.FUZZ_SEED === undefined ? Date.now() >>> 0 : Number(process.env.FUZZ_SEED) >>> 0;

/** Statuses that say "the sender's fault, refused": what any malformed input may be answered with. */
export const REFUSED = [400, 401, 403, 404, 405, 408, 411, 413, 415, 431, 501];

// ---------------------------------------------------------------------------------------------------
// A small deterministic PRNG (mulberry32) and what the generators draw with it.

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Rng {
  readonly #next: () => number;
  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }
  float(): number {
    return this.#next();
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.#next() * (hi - lo + 1));
  }
  /** An integer in [lo, hi], small ones as likely as large ones by order of magnitude. */
  logInt(lo: number, hi: number): number {
    return Math.min(hi, Math.floor(lo * (hi / lo) ** this.#next()));
  }
  chance(p: number): boolean {
    return this.#next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.#next() * items.length)] as T;
  }
  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.#next() * 256);
    return out;
  }
  string(n: number, alphabet: string): string {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(this.#next() * alphabet.length)];
    return s;
  }
}

export const caseRng = (index: number) => new Rng((SEED ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);

export const TOKEN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~";
export const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';
export const CTRL = `${Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join('')}\x7f`;
export const HIGH = Array.from({ length: 128 }, (_, i) => String.fromCharCode(128 + i)).join('');

// ---------------------------------------------------------------------------------------------------
// Cases.

/** A request as headers and a body: sent through the keep-alive agent, or serialised onto a raw socket. */
export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  /** Sent in this order; a name may repeat. */
  readonly headers: Array<[string, string]>;
  readonly body: Buffer;
  /** Send neither Content-Length nor Transfer-Encoding (unless in `headers`). */
  readonly noLength?: boolean;
}

export interface Case {
  readonly generator: string;
  /** The statuses this input may be answered with (a closed socket is always acceptable). */
  readonly expect: readonly number[];
  /** When the input pins it, the codes the answer must carry. */
  readonly codes?: readonly string[] | undefined;
  /** Bytes for a fresh TLS socket... */
  readonly raw?: Buffer;
  /** ...or a request, whose transport is drawn at random. */
  readonly http?: HttpRequest;
  /** Half-close after writing: the input is incomplete on purpose and nothing more will come. */
  readonly end?: boolean;
  /** Only over a raw socket (the agent would refuse or rewrite the headers). */
  readonly rawOnly?: boolean;
}

export const segmentHeaders = (key = KEY): Array<[string, string]> => [
  ['Authorization', basic(key)],
  ['Content-Type', 'application/json'],
  ['User-Agent', 'Segment.io/1.0'],
  ['Accept', '*/*'],
];

/** A well-formed event of a random type: what the header generators send, so only the header is wrong. */
export function validEvent(r: Rng): Record<string, unknown> {
  const type = r.pick(EVENT_TYPES);
  const base: Record<string, unknown> = {
    type,
    messageId: `fz-${r.int(0, 2 ** 31)}`,
    userId: `u${r.int(0, 999)}`,
    timestamp: '2026-11-26T10:00:00.000Z',
    context: { library: { name: 'fuzz', version: '1' } },
  };
  if (type === 'track') Object.assign(base, { event: 'Fuzzed', properties: { n: r.int(0, 9) } });
  if (type === 'identify') base.traits = { plan: 'pro' };
  if (type === 'group') base.groupId = `g${r.int(0, 99)}`;
  if (type === 'alias') base.previousId = `p${r.int(0, 99)}`;
  if (type === 'page' || type === 'screen') base.name = 'Home';
  return base;
}

/** An event no schema accepts (a track without `event`): the body of the framing generators. */
export function invalidEventBody(r: Rng): Buffer {
  return Buffer.from(
    JSON.stringify({ type: 'track', userId: `u${r.int(0, 99)}`, messageId: `fz-${r.int(0, 1e9)}` }),
  );
}

export const http = (body: Buffer, headers = segmentHeaders(), method = 'POST', path = '/'): HttpRequest => ({
  method,
  path,
  headers,
  body,
});

/** The request as HTTP/1.1 bytes, Content-Length added unless the headers frame the body themselves. */
export function serialise(req: HttpRequest): Buffer {
  let head = `${req.method} ${req.path} HTTP/1.1\r\nHost: localhost\r\n`;
  const framed = req.headers.some(([name]) => /^(content-length|transfer-encoding)$/i.test(name));
  for (const [name, value] of req.headers) head += `${name}: ${value}\r\n`;
  if (!framed && !req.noLength) head += `Content-Length: ${req.body.length}\r\n`;
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), req.body]);
}

export function chunked(body: Buffer, r: Rng): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < body.length; ) {
    const size = Math.min(body.length - at, r.int(1, 64 * 1024));
    parts.push(Buffer.from(`${size.toString(16)}\r\n`), body.subarray(at, at + size), Buffer.from('\r\n'));
    at += size;
  }
  parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

export type Generator = (r: Rng) => Case;
