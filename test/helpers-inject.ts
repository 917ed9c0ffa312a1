// Drives a (req, res) handler in process, without a socket, through light-my-request: the request
// shaped as Node's parser makes it, a body sent whole, in chunks, left open or cut off.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import lightMyRequest from 'light-my-request';
import { segmentHeaders } from './helpers.ts';

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
      if (options.parsedBody === undefined) {
        handler(req, res);
        return;
      }
      // As a framework that parsed it: the stream read to its end first, then `req.body` set.
      req.on('end', () => {
        (req as IncomingMessage & { body?: unknown }).body = options.parsedBody;
        handler(req, res);
      });
      req.resume();
    },
    {
      method: options.method ?? 'POST',
      url: options.url ?? '/',
      headers,
      ...(streamed ? { payload: drip(parts, after) } : parts[0] === undefined ? {} : { payload: parts[0] }),
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
}
