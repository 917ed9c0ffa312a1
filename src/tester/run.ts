// `segment-endpoint test URL --api-key KEY`: the local equivalent of Segment's "Send Test Event" and
// Event Tester. Sends the suite (suite.ts) exactly as Segment sends events (its headers, one event per
// request, one kept-alive connection, a 5 s timeout) and checks each answer against the partner contract.

import { randomUUID } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { shownUrl } from '../sender-args.ts';
import { EVENT_TYPES } from '../types.ts';
import { caseHeaders, segmentHeaders, settingsHeader } from './headers.ts';
import { closedWarning, keptAlive, methodWarning } from './manners.ts';
import { type Answer, send } from './send.ts';
import { printable, shown, truncate } from './shown.ts';
import { type Expectation, suite, type TestCase } from './suite.ts';

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
  /** Whether the case went out on a new connection, not the one kept alive from the case before. */
  readonly fresh?: boolean;
}

export interface Summary {
  readonly passed: number;
  readonly failed: number;
  readonly results: readonly CaseResult[];
}

const TIMEOUT_MS = 5_000; // 5 s: Segment gives up on a request after about that

/** Sends the suite to `url` one event at a time and writes what happened, line by line, to `write`. */
export async function run(url: string, options: RunOptions, write: (line: string) => void): Promise<Summary> {
  const target = new URL(url);
  const timeoutMs = options.timeoutMs ?? TIMEOUT_MS;
  const settings = options.settings === undefined ? undefined : settingsHeader(options.settings);
  const cases = suite({ id: randomUUID(), apiKey: options.apiKey, now: new Date(), settings: !!settings });
  // One connection kept alive across the suite, as Segment does "whenever possible".
  const agent = keptAlive(
    target.protocol === 'https:'
      ? new HttpsAgent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: !options.insecure })
      : new HttpAgent({ keepAlive: true, maxSockets: 1 }),
  );
  const where = shownUrl(target.href); // its query's values and any credentials left out
  write(`Sending ${cases.length} events to ${where} as Segment does (${timeoutMs / 1000} s timeout each)`);
  const results: CaseResult[] = [];
  /** Types whose good events this endpoint accepted: a 501 to one of them is no "type not taken". */
  const taken = new Set<string>();
  /** What the endpoint's HTTP does that the contract advises against, though no case fails for it. */
  const warnings: Array<string | undefined> = [];
  try {
    for (const [i, c] of cases.entries()) {
      const body = Buffer.from(typeof c.body === 'string' ? c.body : JSON.stringify(c.body));
      const headers = caseHeaders(options.apiKey, settings, c.headers, body.length);
      write('');
      write(`${i + 1}. ${c.name}`);
      for (const [name, value] of Object.entries(c.headers ?? {})) {
        write(`   ${value === null ? `(no ${name})` : `${name}: ${shown(name, value)}`}`);
      }
      write(`   POST ${where} ${truncate(body.toString())}`);
      let judged: Judged;
      try {
        const answer = await send(target, headers, body, agent, timeoutMs);
        write(`   ${answer.status}${said(answer)}`);
        judged = judge(c, answer, taken);
      } catch (err) {
        const error = (err as Error).message;
        write(`   no answer: ${error}`);
        judged = {
          result: { name: c.name, pass: false, error },
          verdict: `FAIL (expected ${expected(c.expect)})`,
        };
      }
      write(`   ${judged.verdict}`);
      results.push(judged.result);
    }
    const { 'Content-Type': _, ...getHeaders } = segmentHeaders(options.apiKey, settings);
    warnings.push(closedWarning(results), await methodWarning(target, getHeaders, agent, timeoutMs));
  } finally {
    agent.destroy();
  }
  return summarise(results, taken, warnings, write);
}

/**
 * The run's verdict, written: a 501 to every good event is an endpoint that takes no type at all, and a
 * 501 to a type accepted in a later case (`taken`) was no "type not taken" either.
 */
function summarise(
  results: readonly CaseResult[],
  taken: ReadonlySet<string>,
  warnings: ReadonlyArray<string | undefined>,
  write: (line: string) => void,
): Summary {
  const answered501 = new Set(results.flatMap((r) => (r.notTaken === undefined ? [] : [r.notTaken])));
  const takenToo = [...answered501].filter((type) => taken.has(type));
  const notTaken = [...answered501].filter((type) => !taken.has(type));
  const takesNone =
    notTaken.length > 0 && !results.some((r) => r.status !== undefined && matches('accept', r.status));
  const judged = results.map((r) =>
    r.notTaken !== undefined && (takesNone || taken.has(r.notTaken)) ? { ...r, pass: false } : r,
  );
  const failures = judged.filter((r) => !r.pass).map((r) => r.name);
  write('');
  for (const type of takenToo) {
    write(
      `${type} events were answered 501 (not taken) and also accepted: a 501 is for a type taken nowhere`,
    );
  }
  if (takesNone) write('No event type is taken: every good event was answered 501');
  else if (notTaken.length > 0) write(`Not taken by this endpoint (501): ${notTaken.join(', ')}`);
  // The contract allows a 501 for a type a destination has no use for, but not for a user deletion.
  if (notTaken.includes('delete')) {
    write(
      "Warning: delete events (a customer's request to delete a user, under GDPR or CCPA) were " +
        'answered 501: a partner must honour them',
    );
  }
  for (const warning of warnings) if (warning !== undefined) write(warning);
  if (failures.length > 0) write(`Failed: ${failures.join('; ')}`);
  // On its own line, worded exactly so: CI greps for it.
  write(`${judged.length - failures.length} passed, ${failures.length} failed`);
  return { passed: judged.length - failures.length, failed: failures.length, results: judged };
}

interface Judged {
  readonly result: CaseResult;
  /** The case's last line: PASS or FAIL, and why. */
  readonly verdict: string;
}

/**
 * A case's answer against the contract: its status (a 501 passes for a type this endpoint takes nowhere
 * else), and a refusal's JSON `{"message"}`, which Segment shows the customer. A type accepted goes into
 * `taken`.
 */
function judge(c: TestCase, { contentType, ...answer }: Answer, taken: Set<string>): Judged {
  const type = answer.status === 501 ? typeNotTaken(c) : undefined;
  const fail = (why: string) => ({
    result: { name: c.name, pass: false, ...answer },
    verdict: `FAIL (expected ${expected(c.expect)}${why})`,
  });
  if (type !== undefined && taken.has(type)) {
    return fail(`; a 501 says that ${type} events are not taken, yet this endpoint took the ones above`);
  }
  const statusOk = type !== undefined || matches(c.expect, answer.status);
  // application/json, or a JSON of its own name (application/problem+json), parameters after a `;`.
  const json = /^application\/(?:[\w.-]+\+)?json\s*(?:;|$)/i.test(contentType ?? '');
  const explained = answer.status < 300 || (json && (answer.message?.trim() ?? '') !== '');
  if (statusOk && !explained) {
    return type === undefined
      ? fail(`, with a JSON {"message"} saying what is wrong: Segment shows it to the customer`)
      : {
          result: { name: c.name, pass: false, ...answer },
          verdict:
            'FAIL (a 501, for a type not taken, with a JSON {"message"} saying so: Segment shows it to the customer)',
        };
  }
  if (answer.status >= 300 && INTERNALS.test(answer.message ?? '')) {
    return fail(
      `, with a message that names no stack trace or source file: Segment shows it to the customer`,
    );
  }
  if (type !== undefined) {
    return {
      result: { name: c.name, pass: true, ...answer, notTaken: type },
      verdict: `PASS (501: this endpoint does not take ${type} events, as the contract allows)`,
    };
  }
  if (statusOk && c.expect === 'accept') taken.add(typeOf(c) ?? '');
  return statusOk
    ? { result: { name: c.name, pass: true, ...answer }, verdict: `PASS (expected ${expected(c.expect)})` }
    : fail('');
}

/** What an answer said, as its status line goes on: its JSON message, or the start of a body that is none. */
function said({ message, bodyStart }: Answer): string {
  if (message !== undefined) return ` ${printable(message)}`;
  return bodyStart === undefined ? '' : `, not a JSON {"message"}: ${printable(bodyStart)}`;
}

// A stack trace's frame (`\n    at f (...)`, Python's `File "..."`), or a source file and line (`app.js:12`).
const INTERNALS = /\n\s+at \S|\bFile "[^"]+", line \d|\.(?:[cm]?[jt]s|py|rb|go|java|php|cs):\d+\b/;

/**
 * The type of a case's event, when a 501 to it is the contract's answer for a type the endpoint does not
 * take: a good event (with Segment's credentials in another spelling too), or one refused for its type's
 * own fields (the type is checked first). Not for the refusals of the request itself (auth, framing,
 * settings): those are owed their own status first.
 */
function typeNotTaken(c: TestCase): string | undefined {
  if (c.expect === 'accept' || (c.expect === 400 && c.headers === undefined)) return typeOf(c);
  return undefined;
}

/** The Segment type of a case's event, in lower case (`"Track"` is a track), if it has one. */
function typeOf(c: TestCase): string | undefined {
  if (typeof c.body !== 'object') return undefined;
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
