// `segment-endpoint test URL --api-key KEY`: the local equivalent of Segment's "Send Test Event" and
// Event Tester. Sends the suite (suite.ts) exactly as Segment sends events (its headers, one event per
// request, one kept-alive connection, a 5 s timeout) and checks each answer against the partner contract.

import { randomUUID } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { EVENT_TYPES } from '../types.ts';
import { base64, type Expectation, suite, type TestCase } from './suite.ts';

export interface RunOptions {
  readonly apiKey: string;
  /**
   * Sent base64-encoded in `X-Segment-Settings` with every event (absent when undefined): an object as
   * JSON, or JSON text as it is.
   */
  readonly settings?: Readonly<Record<string, unknown>> | string;
  /** Accept any certificate (self-signed, wrong name). */
  readonly insecure?: boolean;
  /** No answer within this is a failure, as it is for Segment. @default 5000 (5 s) */
  readonly timeoutMs?: number;
}

export interface CaseResult {
  readonly name: string;
  readonly pass: boolean;
  /** The status answered; undefined when there was no answer (`error` says why). */
  readonly status?: number;
  readonly message?: string;
  readonly error?: string;
  /** The case's event type, answered 501: a type this endpoint does not take, which the contract allows. */
  readonly notTaken?: string;
}

export interface Summary {
  readonly passed: number;
  readonly failed: number;
  readonly results: readonly CaseResult[];
}

const TIMEOUT_MS = 5_000; // 5 s: Segment gives up on a request after about that
const BODY_SHOWN = 200; // characters of each body printed
const ANSWER_KEPT = 64 * 1024; // bytes of an answer read for its message

/** Sends the suite to `url` one event at a time and writes what happened, line by line, to `write`. */
export async function run(url: string, options: RunOptions, write: (line: string) => void): Promise<Summary> {
  const target = new URL(url);
  const timeoutMs = options.timeoutMs ?? TIMEOUT_MS;
  const settings = options.settings === undefined ? undefined : settingsHeader(options.settings);
  const cases = suite({ id: randomUUID(), apiKey: options.apiKey, now: new Date() });
  // One connection kept alive across the suite, as Segment does "whenever possible".
  const agent =
    target.protocol === 'https:'
      ? new HttpsAgent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: !options.insecure })
      : new HttpAgent({ keepAlive: true, maxSockets: 1 });
  write(
    `Sending ${cases.length} events to ${target.href} as Segment does (${timeoutMs / 1000} s timeout each)`,
  );
  const results: CaseResult[] = [];
  try {
    for (const [i, c] of cases.entries()) {
      const body = Buffer.from(typeof c.body === 'string' ? c.body : JSON.stringify(c.body));
      const headers = caseHeaders(options.apiKey, settings, c.headers, body.length);
      write('');
      write(`${i + 1}. ${c.name}`);
      for (const [name, value] of Object.entries(c.headers ?? {})) {
        write(`   ${value === null ? `(no ${name})` : `${name}: ${shown(name, value)}`}`);
      }
      write(`   POST ${target.href} ${truncate(body.toString())}`);
      let result: CaseResult;
      try {
        const answer = await send(target, headers, body, agent, timeoutMs);
        const notTaken = answer.status === 501 ? typeNotTaken(c) : undefined;
        const pass = notTaken !== undefined || matches(c.expect, answer.status);
        result = { name: c.name, pass, ...answer, ...(notTaken !== undefined && { notTaken }) };
        write(`   ${answer.status}${answer.message === undefined ? '' : ` ${printable(answer.message)}`}`);
      } catch (err) {
        result = { name: c.name, pass: false, error: (err as Error).message };
        write(`   no answer: ${result.error}`);
      }
      write(
        result.notTaken === undefined
          ? `   ${result.pass ? 'PASS' : 'FAIL'} (expected ${expected(c.expect)})`
          : `   PASS (501: this endpoint does not take ${result.notTaken} events, as the contract allows)`,
      );
      results.push(result);
    }
  } finally {
    agent.destroy();
  }
  return summarise(results, write);
}

/** The run's verdict, written: a 501 to every good event is an endpoint that takes no type at all. */
function summarise(results: readonly CaseResult[], write: (line: string) => void): Summary {
  const notTaken = [...new Set(results.flatMap((r) => (r.notTaken === undefined ? [] : [r.notTaken])))];
  const takesNone =
    notTaken.length > 0 && !results.some((r) => r.status !== undefined && matches('accept', r.status));
  const judged = results.map((r) => (takesNone && r.notTaken !== undefined ? { ...r, pass: false } : r));
  const failures = judged.filter((r) => !r.pass).map((r) => r.name);
  write('');
  if (takesNone) write('No event type is taken: every good event was answered 501');
  else if (notTaken.length > 0) write(`Not taken by this endpoint (501): ${notTaken.join(', ')}`);
  if (failures.length > 0) write(`Failed: ${failures.join('; ')}`);
  // On its own line, worded exactly so: CI greps for it.
  write(`${judged.length - failures.length} passed, ${failures.length} failed`);
  return { passed: judged.length - failures.length, failed: failures.length, results: judged };
}

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
function caseHeaders(
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

function send(
  url: URL,
  headers: Record<string, string>,
  body: Buffer,
  agent: HttpAgent,
  timeoutMs: number,
  retried = false,
): Promise<{ status: number; message?: string }> {
  const request = (url.protocol === 'https:' ? httpsRequest : httpRequest) as typeof httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers, agent });
    const timer = setTimeout(
      () => req.destroy(new Error(`timed out after ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    const fail = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      // A kept-alive connection the server closed just as this request went out: send once more on a new
      // one, as node's docs advise (http `request.reusedSocket`).
      if (!retried && req.reusedSocket && err.code === 'ECONNRESET') {
        send(url, headers, body, agent, timeoutMs, true).then(resolve, reject);
      } else {
        reject(err);
      }
    };
    req.on('error', fail);
    // A 101 comes to this listener, not as a response; with none, node drops the socket and the request
    // would settle neither way.
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      clearTimeout(timer);
      resolve({ status: res.statusCode ?? 101 });
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on('data', (chunk: Buffer) => {
        if (kept < ANSWER_KEPT) chunks.push(chunk);
        kept += chunk.length;
      });
      res.on('error', fail);
      res.on('end', () => {
        clearTimeout(timer);
        const message = messageOf(Buffer.concat(chunks).toString('utf8'));
        resolve({ status: res.statusCode ?? 0, ...(message === undefined ? {} : { message }) });
      });
    });
    req.end(body);
  });
}

/**
 * An endpoint's text as one line of this report: control characters shown escaped (`\n`, `\u001b`), so
 * that a message cannot write lines of its own (a forged summary) or drive the terminal.
 */
function printable(text: string): string {
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
function messageOf(text: string): string | undefined {
  try {
    const message = (JSON.parse(text) as { message?: unknown } | null)?.message;
    return typeof message === 'string' ? message : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The type of a case's event, when a 501 to it is the contract's answer for a type the endpoint does not
 * take: a good event, or one refused for its type's own fields (the type is checked first). Not for the
 * cases about the request itself (auth, framing, settings): those are owed their own status first.
 */
function typeNotTaken(c: TestCase): string | undefined {
  const expectsValidation = c.expect === 'accept' || c.expect === 400;
  if (!expectsValidation || typeof c.body !== 'object' || c.headers !== undefined) return undefined;
  const type = typeof c.body.type === 'string' ? c.body.type.toLowerCase() : undefined;
  return type !== undefined && (EVENT_TYPES as readonly string[]).includes(type) ? type : undefined;
}

function matches(expect: Expectation, status: number): boolean {
  if (expect === 'accept') return status === 200 || status === 202;
  return typeof expect === 'number' ? status === expect : expect.includes(status);
}

function expected(expect: Expectation): string {
  if (expect === 'accept') return '200 or 202';
  return typeof expect === 'number' ? String(expect) : expect.join(' or ');
}

function truncate(text: string): string {
  return text.length <= BODY_SHOWN ? text : `${text.slice(0, BODY_SHOWN)}…`;
}

/** A credential is never printed whole: the scheme word says enough. */
function shown(name: string, value: string): string {
  return name.toLowerCase() === 'authorization' ? `${value.split(' ')[0]} …` : value;
}
