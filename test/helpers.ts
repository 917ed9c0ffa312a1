import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach } from 'node:test';
import { connect } from 'node:tls';
import lightMyRequest from 'light-my-request';
import {
  type Context,
  createHandler,
  createServer,
  type EndpointServer,
  type Handlers,
  type ServerOptions,
  silentLogger,
} from '../src/index.ts';

export const API_KEY = 'test-key';

/** `Authorization: Basic base64(key:)`, exactly as Segment sends it. */
export function basic(key: string, colon = true): string {
  return `Basic ${Buffer.from(colon ? `${key}:` : key).toString('base64')}`;
}

export function encodeSettings(settings: unknown): string {
  return Buffer.from(JSON.stringify(settings)).toString('base64');
}

/** The headers Segment sends with every event. */
export function segmentHeaders(key = API_KEY): Record<string, string> {
  return {
    authorization: basic(key),
    'content-type': 'application/json',
    'user-agent': 'Segment.io/1.0',
    accept: '*/*',
    'cache-control': 'no-cache',
  };
}

export const trackEvent = (extra: Record<string, unknown> = {}) => ({
  type: 'track',
  event: 'Signed Up',
  userId: 'u1',
  messageId: `m-${Math.random().toString(36).slice(2)}`,
  timestamp: '2026-11-26T10:00:00.000Z',
  properties: { plan: 'pro' },
  context: { library: { name: 'analytics-node', version: '2.0.0' } },
  ...extra,
});

/** What `recorder()` saw: each event a handler was called with, and its context. */
export type Seen = Array<{ event: Record<string, unknown>; ctx: Context }>;

/**
 * A handler for every event type that records what it is called with, in `seen`; `fail` may pick an
 * error for an event to be thrown instead.
 */
export function recorder(fail?: (event: Record<string, unknown>) => Error | undefined): {
  seen: Seen;
  handlers: Handlers;
} {
  const seen: Seen = [];
  const record = (event: unknown, ctx: Context) => {
    const error = fail?.(event as Record<string, unknown>);
    if (error !== undefined) throw error;
    seen.push({ event: event as Record<string, unknown>, ctx });
  };
  const handlers: Handlers = {
    identify: record,
    track: record,
    page: record,
    screen: record,
    group: record,
    alias: record,
    delete: record,
  };
  return { seen, handlers };
}

/** The five calls a Node SDK's user makes, one of each type (identify, track, page, group, alias). */
export interface NodeSdk {
  identify(message: object): void;
  track(message: object): void;
  page(message: object): void;
  group(message: object): void;
  alias(message: object): void;
}

/** One event of each type through a Node SDK; the track is 'Signed Up' with `{ plan: 'pro' }`. */
export function sendOneOfEach(analytics: NodeSdk): void {
  analytics.identify({ userId: 'u1', traits: { email: 'ada@example.com' } });
  analytics.track({ userId: 'u1', event: 'Signed Up', properties: { plan: 'pro' } });
  analytics.page({ anonymousId: 'a1', name: 'Home' });
  analytics.group({ userId: 'u1', groupId: 'g1' });
  analytics.alias({ userId: 'u1', previousId: 'a1' });
}

export interface InjectOptions {
  method?: string;
  url?: string;
  /** Replaces Segment's default headers entirely when given (Host is added, as every HTTP/1.1 client does). */
  headers?: Record<string, string | undefined>;
  /** JSON-encoded unless a string or Buffer. Sent with its Content-Length unless `chunks` is used. */
  body?: unknown;
  /** Sent one chunk at a time: chunked, unless `headers` give a Content-Length. */
  chunks?: Array<string | Buffer>;
  /** Leave the stream open after the body: a client that stalls. */
  stall?: boolean;
  /** After the body, the client goes away (its socket closes): the response resolves with status 0. */
  abort?: boolean;
  /** A body a framework already parsed (`req.body`). */
  parsedBody?: unknown;
  /** Send the body with neither Content-Length nor Transfer-Encoding. */
  noLength?: boolean;
  /** Headers as sent, with repeats (`req.rawHeaders`); they replace the same names in `headers`. */
  rawHeaders?: string[];
}

export interface InjectResponse {
  status: number;
  /** Lower-cased names; the values a real response sends, Node's own included (Date, Connection). */
  headers: Record<string, string>;
  body: string;
  json(): { message?: string; code?: string; status?: string };
}

/**
 * Drives a `(req, res)` handler in process through light-my-request: a real `ServerResponse`, a request
 * shaped as Node's parser makes it, no socket. Resolves when the handler ends its response.
 */
export async function inject(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  options: InjectOptions = {},
): Promise<InjectResponse> {
  const headers = requestHeaders(options);
  const parts =
    options.chunks?.map((c) => Buffer.from(c)) ??
    (options.body === undefined ? [] : [bodyBytes(options.body)]);
  if (options.chunks !== undefined) {
    if (!('content-length' in headers)) headers['transfer-encoding'] ??= 'chunked';
  } else if (
    !('content-length' in headers) &&
    !options.noLength &&
    (options.body !== undefined || options.parsedBody === undefined)
  ) {
    headers['content-length'] = String(parts[0]?.length ?? 0);
  }
  // A stream payload is the only one light-my-request sends without a Content-Length of its own, and
  // the only one that can be left open or cut off.
  const streamed = options.chunks !== undefined || options.stall || options.noLength || options.abort;
  let request: IncomingMessage | undefined;
  const after = options.abort ? () => goAway(request as IncomingMessage) : options.stall ? 'stall' : 'end';
  const sending = lightMyRequest(
    (req, res) => {
      request = req;
      asParsed(req, options, 'user-agent' in headers);
      handler(req, res);
    },
    {
      method: options.method ?? 'POST',
      url: options.url ?? '/',
      headers,
      payload: streamed ? drip(parts, after) : parts[0],
    },
  );
  let res: Awaited<typeof sending>;
  try {
    res = await sending;
  } catch (err) {
    // light-my-request's word for a response that never completed: the client was gone first.
    if (!options.abort || (err as NodeJS.ErrnoException).code !== 'LIGHT_ECONNRESET') throw err;
    return { status: 0, headers: {}, body: '', json: () => JSON.parse('') };
  }
  const sent = Object.fromEntries(
    Object.entries(res.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]),
  );
  return { status: res.statusCode, headers: sent, body: res.payload, json: () => JSON.parse(res.payload) };
}

function requestHeaders(options: InjectOptions): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(options.headers ?? segmentHeaders())) {
    if (v !== undefined) headers[k.toLowerCase()] = v;
  }
  // light-my-request sends an array as the same header repeated, and folds it as Node does.
  const raw = options.rawHeaders ?? [];
  const repeated: Record<string, string[]> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    repeated[name] = [...(repeated[name] ?? []), raw[i + 1] as string];
  }
  return Object.assign(headers, repeated);
}

function bodyBytes(body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body;
  return Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
}

/** The body one part at a time, each in its own turn of the event loop; then its end, or not, or `after`. */
function drip(parts: Buffer[], after: 'end' | 'stall' | (() => void)): Readable {
  const queue = [...parts];
  let done = false;
  return new Readable({
    read() {
      const next = queue.shift();
      if (next !== undefined) setImmediate(() => this.push(next));
      else if (after === 'end') this.push(null);
      else if (after !== 'stall' && !done) {
        done = true;
        setImmediate(after);
      }
    },
  });
}

/** What Node does when the client's socket closes before the end of the body. */
function goAway(req: IncomingMessage): void {
  (req as { aborted: boolean }).aborted = true;
  req.emit('aborted'); // deprecated, still emitted by Node 20
  req.destroy();
}

/**
 * What Node's HTTP server does and light-my-request does not: `req.url` is the target as sent (not
 * normalised through URL), `req.complete` turns true once the last byte of the body has arrived, no
 * User-Agent the client did not send; and what a framework does: `req.body` set when it parsed one.
 */
function asParsed(req: IncomingMessage, options: InjectOptions, userAgent: boolean): void {
  req.url = options.url ?? '/';
  if (!userAgent) {
    delete req.headers['user-agent'];
    req.rawHeaders = req.rawHeaders.filter((_, i, raw) => raw[i - (i % 2)] !== 'user-agent');
  }
  req.complete = false;
  const push = req.push;
  req.push = function (this: IncomingMessage, chunk: unknown, encoding?: BufferEncoding) {
    if (chunk === null) this.complete = true;
    return push.call(this, chunk, encoding);
  };
  if (options.parsedBody !== undefined)
    (req as IncomingMessage & { body?: unknown }).body = options.parsedBody;
}

export interface TestCert {
  cert: Buffer;
  key: Buffer;
}

let cached: TestCert | undefined;

/** A self-signed certificate for localhost, made now with openssl: no private key is committed. */
export function testCert(): TestCert {
  if (cached !== undefined) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'segment-endpoint-cert-'));
  try {
    const files = makeCert(dir, 'test');
    cached = { cert: readFileSync(files.cert), key: readFileSync(files.key) };
    return cached;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes a new self-signed localhost certificate (`O=<name>`) and its key into `dir`. */
export function makeCert(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=localhost/O=${name}`,
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}

/** A new temporary directory `segment-endpoint-<name>-…` a call; all are removed after each test. */
export function tempDirs(name: string): () => string {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    const dir = mkdtempSync(join(tmpdir(), `segment-endpoint-${name}-`));
    dirs.push(dir);
    return dir;
  };
}

/**
 * `createServer` over TLS with the test certificate, on a free port of 127.0.0.1, taking API_KEY and
 * logging nothing; `options` add to these or replace them. Resolves once it listens.
 */
export async function listenTls(
  options: Partial<ServerOptions> & Pick<ServerOptions, 'handlers'>,
): Promise<{ endpoint: EndpointServer; url: string; port: number }> {
  const endpoint = createServer({
    tls: testCert(),
    host: '127.0.0.1',
    port: 0,
    apiKeys: [API_KEY],
    log: silentLogger,
    ...options,
  });
  const url = await endpoint.listen();
  return { endpoint, url, port: Number(new URL(url).port) };
}

export const ROOT = join(import.meta.dirname, '..');

/** The CLI run from source (so coverage counts it): `node <CLI_SOURCE> [args]`. */
export const CLI_SOURCE = [
  '--conditions=segment-endpoint-source',
  '--import',
  'tsx',
  join(ROOT, 'src', 'cli.ts'),
];

/** The CLI's flags for plain HTTP on a free port of 127.0.0.1, taking `apiKey` when given. */
export function httpFlags(apiKey?: string): string[] {
  const flags = ['--http', '--host', '127.0.0.1', '--port', '0'];
  return apiKey === undefined ? flags : [...flags, '--api-key', apiKey];
}

export interface Spawned {
  readonly child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  readonly exit: Promise<number | null>;
}

/** The test's own environment without its SEGMENT_* variables, which would configure the endpoint. */
export function cleanEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SEGMENT_')));
  return { ...base, ...env };
}

/** Spawns a process without the SEGMENT_* variables of the test's own environment; keeps its output. */
export function spawnClean(
  command: string,
  args: string[],
  cwd = ROOT,
  env: NodeJS.ProcessEnv = {},
): Spawned {
  return spawnWith(command, args, cwd, cleanEnv(env));
}

/** Spawns a process with exactly `env` as its environment; keeps its output. */
export function spawnWith(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): Spawned {
  const child = spawn(command, args, { cwd, env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => {
    stdout += c;
  });
  child.stderr.on('data', (c) => {
    stderr += c;
  });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exit: new Promise((done) => child.on('exit', (code) => done(code))),
  };
}

/** Waits (up to `ms`) until `text()` matches `re`; the match, or an assertion failure showing the text. */
export async function waitFor(text: () => string, re: RegExp, ms = 10_000): Promise<RegExpExecArray> {
  const found: { match?: RegExpExecArray } = {};
  const matches = () => {
    found.match = re.exec(text()) ?? undefined;
    return found.match !== undefined;
  };
  await waitUntil(matches, () => `${re} in:\n${text()}`, ms);
  return found.match as RegExpExecArray;
}

/**
 * Waits until `check()` holds, looking every 20 ms. `ms` only bounds a test that would otherwise hang:
 * past it, an error naming what was awaited.
 */
export async function waitUntil(check: () => boolean, what: () => string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `reached` resolves at the `n`th `hit()`: "once n handlers have started", without a sleep. */
export function countdown(n: number): { hit(): void; readonly reached: Promise<void> } {
  let left = n;
  let done = () => {};
  const reached = new Promise<void>((resolve) => {
    done = resolve;
  });
  return {
    hit() {
      if (--left === 0) done();
    },
    reached,
  };
}

/** A promise and the function that settles it: a handler held until the test lets it go. */
export function gate(): { readonly opened: Promise<void>; open(): void } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

export interface HttpsResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The local port of the socket used: equal across requests means one kept-alive connection. */
  localPort: number | undefined;
}

/** A keep-alive agent that trusts the test certificate and holds one connection. */
export function keepAliveAgent(ca: Buffer): Agent {
  return new Agent({ keepAlive: true, maxSockets: 1, ca });
}

/** One HTTPS request through `agent`, verifying the certificate against `localhost`. */
export function httpsCall(
  agent: Agent,
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<HttpsResponse> {
  const body =
    options.body === undefined
      ? undefined
      : Buffer.from(typeof options.body === 'string' ? options.body : JSON.stringify(options.body));
  const headers = { ...(options.headers ?? segmentHeaders()) };
  if (body !== undefined) headers['content-length'] = String(body.length);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      { method: options.method ?? 'POST', headers, agent, servername: 'localhost' },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            localPort: req.socket?.localPort,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Writes raw bytes over TLS and collects what comes back until the server closes the connection: for
 * requests no well-behaved client would send (no length, a stalled body). A request the server should
 * answer on a connection it keeps says `Connection: close`. `guardMs` only bounds a server that never
 * closes: the promise rejects, showing what had arrived.
 */
export function rawTls(port: number, ca: Buffer, text: string | Buffer, guardMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () =>
      socket.write(text),
    );
    const chunks: Buffer[] = [];
    const received = () => Buffer.concat(chunks).toString();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open ${guardMs} ms; received:\n${received()}`));
    }, guardMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    // A reset after the server's answer still shows as the close.
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received());
    });
  });
}

/** Status code and JSON body of a raw HTTP/1.1 response. */
export function parseRaw(response: string): { status: number; headers: string; body: string } {
  const split = response.indexOf('\r\n\r\n');
  const head = response.slice(0, split);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
  return { status, headers: head.toLowerCase(), body: response.slice(split + 4) };
}

/**
 * A handler over `idempotency` whose track handler records each messageId it runs in `calls`, waits for
 * `hold`, and fails with a 503 as many times as `failNext(n)` asks: for duplicate-suppression tests.
 */
export function countingHandler(
  idempotency: Parameters<typeof createHandler>[0]['idempotency'],
  calls: string[] = [],
  hold: Promise<void> = Promise.resolve(),
) {
  let fail = 0;
  const handler = createHandler({
    apiKeys: [API_KEY, 'other-key'],
    log: silentLogger,
    idempotency,
    handlers: {
      track: async (event) => {
        calls.push(String(event.messageId));
        await hold;
        if (fail > 0) {
          fail--;
          throw Object.assign(new Error('downstream down'), { status: 503 });
        }
      },
    },
  });
  return { handler, calls, failNext: (n: number) => (fail = n) };
}

/** The fingerprint of the certificate a fresh TLS connection to `port` is offered, whoever signed it. */
export function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}
