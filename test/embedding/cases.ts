// The contract cases every host of the handler must answer the same way (issue 13): the standalone
// server, the fastify plugin, express, Koa, and later the fetch handler. Each case is a request and the
// answer the contract calls for; `runCases` sends them through a host and collects what it answered, for
// a test to compare with the expectations and with the standalone server's own answers.
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { createServer, type HandlerOptions, silentLogger } from '../../src/index.ts';
import { testCert } from '../helpers-cert.ts';

export const CASE_KEY = 'embed-key';

const basic = (key: string) => `Basic ${Buffer.from(`${key}:`).toString('base64')}`;
const settings = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64');
const track = (messageId: string) =>
  JSON.stringify({ type: 'track', event: 'Signed Up', userId: 'u1', messageId });

/** A case's body as a fetch `Request` takes it. */
export const fetchBody = (body: string | Buffer | undefined): string | Uint8Array<ArrayBuffer> | null =>
  body === undefined ? null : typeof body === 'string' ? body : Uint8Array.from(body);

export interface ContractCase {
  readonly name: string;
  /** Path below where the endpoint is mounted ('/' is its event path). */
  readonly path: string;
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string | Buffer | undefined;
  readonly status: number;
  /** The error code of the JSON answer; undefined for a success. */
  readonly code?: string;
}

const json = { 'content-type': 'application/json' };
const authed = { ...json, authorization: basic(CASE_KEY) };

/** The cases, in order (the duplicate comes after its first copy). */
export const CASES: readonly ContractCase[] = [
  { name: 'a track event', path: '/', method: 'POST', headers: authed, body: track('c-1'), status: 200 },
  {
    name: 'no Authorization',
    path: '/',
    method: 'POST',
    headers: json,
    body: track('c-2'),
    status: 401,
    code: 'SEG_AUTH_MISSING',
  },
  {
    name: 'an unknown key',
    path: '/',
    method: 'POST',
    headers: { ...json, authorization: basic('not-a-key') },
    body: track('c-3'),
    status: 401,
    code: 'SEG_AUTH_UNKNOWN',
  },
  {
    name: 'settings that are not base64 JSON',
    path: '/',
    method: 'POST',
    headers: { ...authed, 'x-segment-settings': '%%%' },
    body: track('c-4'),
    status: 400,
    code: 'SEG_SETTINGS_INVALID',
  },
  {
    name: 'settings of a customer',
    path: '/',
    method: 'POST',
    headers: { ...authed, 'x-segment-settings': settings({ region: 'eu' }) },
    body: track('c-5'),
    status: 200,
  },
  {
    name: "settings that do not match the destination's schema",
    path: '/',
    method: 'POST',
    headers: { ...authed, 'x-segment-settings': settings({ region: 7 }) },
    body: track('c-5b'),
    status: 400,
    code: 'SEG_SETTINGS_INVALID',
  },
  {
    name: 'a body that is not JSON',
    path: '/',
    method: 'POST',
    headers: authed,
    body: '{"type": "track",',
    status: 400,
    code: 'SEG_INVALID_JSON',
  },
  {
    name: 'a body over the limit (maxBodyBytes 4096)',
    path: '/',
    method: 'POST',
    headers: authed,
    body: JSON.stringify({ type: 'track', event: 'x'.repeat(5000), userId: 'u1', messageId: 'c-6' }),
    status: 413,
    code: 'SEG_BODY_TOO_LARGE',
  },
  {
    name: 'an unsupported type',
    path: '/',
    method: 'POST',
    headers: authed,
    body: JSON.stringify({ type: 'purchase', userId: 'u1', messageId: 'c-7' }),
    status: 501,
    code: 'SEG_TYPE_UNSUPPORTED',
  },
  {
    name: 'a duplicate messageId',
    path: '/',
    method: 'POST',
    headers: authed,
    body: track('c-1'),
    status: 200,
  },
  {
    name: 'a handler that throws',
    path: '/',
    method: 'POST',
    headers: authed,
    body: JSON.stringify({ type: 'identify', userId: 'boom', messageId: 'c-8' }),
    status: 500,
    code: 'SEG_INTERNAL',
  },
  {
    name: 'a handler that refuses with 503',
    path: '/',
    method: 'POST',
    headers: authed,
    body: JSON.stringify({ type: 'identify', userId: 'retry', messageId: 'c-9' }),
    status: 503,
    code: 'SEG_RETRY',
  },
  {
    name: 'a Segment route, /v1/track',
    path: '/v1/track',
    method: 'POST',
    headers: authed,
    body: track('c-10'),
    status: 200,
  },
  {
    name: 'a Segment route spelled with a letter percent-encoded, /v1/%74rack',
    path: '/v1/%74rack',
    method: 'POST',
    headers: authed,
    body: track('c-11'),
    status: 200,
  },
  { name: 'health', path: '/health', method: 'GET', headers: {}, status: 200 },
];

/**
 * The options every host is given: the key, a body limit the oversized case passes, and handlers whose
 * behaviour the cases rely on (identify `boom` throws, `retry` answers 503). `seen` collects the
 * messageIds handled, so a test can check the duplicate was not handled twice.
 */
export function caseOptions(seen: string[] = []): HandlerOptions & { maxBodyBytes: number } {
  return {
    apiKeys: [CASE_KEY],
    maxBodyBytes: 4096,
    settingsSchema: TypeCompiler.Compile(Type.Object({ region: Type.Optional(Type.String()) })),
    handlers: {
      track: (event: { messageId?: unknown }) => {
        seen.push(String(event.messageId));
      },
      identify: (event: { userId?: unknown }) => {
        if (event.userId === 'boom') throw new Error('a bug in the partner code');
        if (event.userId === 'retry') return { status: 503 };
        return undefined;
      },
    },
  };
}

export interface Answer {
  readonly status: number;
  readonly body: string;
}

/** Sends every case through `send`, in order; the answers by case name. */
export async function runCases(send: (c: ContractCase) => Promise<Answer>): Promise<Map<string, Answer>> {
  const answers = new Map<string, Answer>();
  for (const c of CASES) answers.set(c.name, await send(c));
  return answers;
}

/** What a case's answer must be: its status and, for a refusal, its code. Returns the mismatches. */
export function mismatches(answers: ReadonlyMap<string, Answer>): string[] {
  const wrong: string[] = [];
  for (const c of CASES) {
    const answer = answers.get(c.name);
    let code: string | undefined;
    try {
      code = answer?.body ? (JSON.parse(answer.body) as { code?: string }).code : undefined;
    } catch {
      code = `<not JSON: ${answer?.body.slice(0, 60)}>`;
    }
    if (answer?.status !== c.status || code !== c.code) {
      wrong.push(`${c.name}: ${answer?.status} ${code ?? ''}, expected ${c.status} ${c.code ?? ''}`);
    }
  }
  return wrong;
}

/** A digest of every answer, to compare two hosts byte for byte. */
export function fingerprint(answers: ReadonlyMap<string, Answer>): string {
  const hash = createHash('sha256');
  for (const [name, { status, body }] of answers) hash.update(`${name}\n${status}\n${body}\n`);
  return hash.digest('hex');
}

/** Sends a case to `origin` (+ `prefix`, where the endpoint is mounted) over HTTPS, on a connection of its own. */
export function sendTo(origin: string, prefix = ''): (c: ContractCase) => Promise<Answer> {
  const ca = testCert().cert;
  return (c) =>
    new Promise((resolve, reject) => {
      const headers = {
        ...c.headers,
        ...(c.body !== undefined && { 'content-length': Buffer.byteLength(c.body) }),
      };
      const req = request(`${origin}${prefix}${c.path === '/' && prefix !== '' ? '' : c.path}`, {
        method: c.method,
        headers,
        ca,
        servername: 'localhost',
        agent: false,
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => {
          body += chunk.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end(c.body);
    });
}

/** The standalone server's answers to every case (a server of their own, closed after): the baseline. */
export async function standaloneAnswers(seen: string[] = []): Promise<Map<string, Answer>> {
  const endpoint = createServer({
    ...caseOptions(seen),
    tls: testCert(),
    host: '127.0.0.1',
    port: 0,
    log: silentLogger,
  });
  const url = await endpoint.listen();
  try {
    return await runCases(sendTo(new URL(url).origin));
  } finally {
    await endpoint.close();
  }
}

/** Serves a `(req, res)` app (express's, Koa's callback) over HTTPS on a free port for the length of `use`. */
export async function served(
  app: (req: IncomingMessage, res: ServerResponse) => void,
  use: (origin: string) => Promise<void>,
): Promise<void> {
  const server = createHttpsServer(testCert(), app);
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  try {
    await use(`https://localhost:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    await new Promise((closed) => server.close(closed));
  }
}
