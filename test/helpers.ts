import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { connect } from 'node:tls';

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

export interface InjectOptions {
  method?: string;
  url?: string;
  /** Replaces Segment's default headers entirely when given. */
  headers?: Record<string, string | undefined>;
  /** JSON-encoded unless a string or Buffer. Sent with its Content-Length unless `chunks` is used. */
  body?: unknown;
  /** Sent chunked (no Content-Length), one chunk at a time. */
  chunks?: Array<string | Buffer>;
  /** Leave the stream open after the body: a client that stalls. */
  stall?: boolean;
  /** A body a framework already parsed (`req.body`). */
  parsedBody?: unknown;
  /** Send the body with neither Content-Length nor Transfer-Encoding. */
  noLength?: boolean;
  /** Headers as sent, with repeats (`req.rawHeaders`); derived from `headers` when absent. */
  rawHeaders?: string[];
}

export interface InjectResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  json(): { message?: string; code?: string; status?: string };
}

class FakeRequest extends Readable {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  complete = false;
  body?: unknown;

  constructor(
    method: string,
    url: string,
    headers: IncomingHttpHeaders,
    private readonly parts: Buffer[],
    private readonly stall: boolean,
  ) {
    super();
    this.method = method;
    this.url = url;
    this.headers = headers;
    this.rawHeaders = Object.entries(headers).flatMap(([k, v]) =>
      Array.isArray(v) ? v.flatMap((x) => [k, x]) : [k, String(v)],
    );
  }

  override _read(): void {
    const next = this.parts.shift();
    if (next !== undefined) {
      setImmediate(() => this.push(next));
    } else if (!this.stall) {
      this.complete = true;
      this.push(null);
    }
  }
}

/**
 * Drives a `(req, res)` handler in process, light-my-request style: no socket, the same pipeline.
 * Resolves when the handler ends its response.
 */
export function inject(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  options: InjectOptions = {},
): Promise<InjectResponse> {
  const headers: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(options.headers ?? segmentHeaders())) {
    if (v !== undefined) headers[k.toLowerCase()] = v;
  }
  let parts: Buffer[] = [];
  if (options.chunks !== undefined) {
    parts = options.chunks.map((c) => Buffer.from(c));
    headers['transfer-encoding'] ??= 'chunked';
  } else if (options.body !== undefined) {
    const raw = options.body;
    const bytes = Buffer.isBuffer(raw)
      ? raw
      : Buffer.from(typeof raw === 'string' ? raw : JSON.stringify(raw));
    parts = [bytes];
    if (!('content-length' in headers) && !options.noLength) {
      headers['content-length'] = String(bytes.length);
    }
  } else if (options.parsedBody === undefined && !('content-length' in headers) && !options.noLength) {
    headers['content-length'] = '0';
  }
  const req = new FakeRequest(
    options.method ?? 'POST',
    options.url ?? '/',
    headers,
    parts,
    options.stall ?? false,
  );
  if (options.parsedBody !== undefined) req.body = options.parsedBody;
  if (options.rawHeaders !== undefined) req.rawHeaders = options.rawHeaders;

  return new Promise((resolve) => {
    let status = 0;
    let sent: Record<string, string> = {};
    const res = {
      headersSent: false,
      writeHead(code: number, h: OutgoingHttpHeaders = {}) {
        status = code;
        sent = Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), String(v)]));
        this.headersSent = true;
        return this;
      },
      end(body?: string | Buffer) {
        const text = body === undefined ? '' : body.toString();
        resolve({ status, headers: sent, body: text, json: () => JSON.parse(text) });
        return this;
      },
    };
    handler(req as unknown as IncomingMessage, res as unknown as ServerResponse);
  });
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

export const ROOT = join(import.meta.dirname, '..');

/** The CLI run from source (so coverage counts it): `node <CLI_SOURCE> [args]`. */
export const CLI_SOURCE = [
  '--conditions=segment-endpoint-source',
  '--import',
  'tsx',
  join(ROOT, 'src', 'cli.ts'),
];

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
  const child = spawn(command, args, { cwd, env: cleanEnv(env) });
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
  const until = Date.now() + ms;
  for (;;) {
    const match = re.exec(text());
    if (match !== null) return match;
    if (Date.now() > until) throw new Error(`timed out waiting for ${re} in:\n${text()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
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
 * Writes raw bytes over TLS and collects what comes back until the server closes or `waitMs` passes:
 * for requests no well-behaved client would send (no length, a stalled body).
 */
export function rawTls(port: number, ca: Buffer, text: string | Buffer, waitMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () =>
      socket.write(text),
    );
    const chunks: Buffer[] = [];
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks).toString());
    };
    const timer = setTimeout(done, waitMs);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', done);
    socket.on('close', done);
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (chunks.length > 0) resolve(Buffer.concat(chunks).toString());
      else reject(err);
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
