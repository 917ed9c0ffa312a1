// How the fuzz tests send a case and judge what came back: over a raw TLS socket or the keep-alive
// agent, the first final response read off the wire, and why an outcome is wrong for its case.
import { type Agent, request } from 'node:https';
import { connect } from 'node:tls';
import { type Case, type HttpRequest, REFUSED, serialise } from './fuzz-cases.ts';

const ANSWER_WAIT_MS = 3_000; // no answer by then: half-close, as a client that has nothing more to send
// Still nothing by then: the server hangs on the input. Only a guard, past the server's own 10 s header
// and body timeouts: a server that sat out the half-close until one of those shows as its 408 (judged
// wrong below), not as a race against this timer.
const CLOSE_WAIT_MS = 30_000;

export interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

export type Outcome =
  | { readonly kind: 'answer'; readonly answer: Answer; readonly lateEnd: boolean }
  | { readonly kind: 'closed'; readonly lateEnd: boolean }
  | { readonly kind: 'stalled' };

/** The first final (non-1xx) response in `buf`, once it is complete; `undefined` until then. */
function firstResponse(buf: Buffer, closed: boolean): Answer | undefined {
  let at = 0;
  for (;;) {
    const split = buf.indexOf('\r\n\r\n', at);
    if (split === -1) return undefined;
    const head = buf.toString('latin1', at, split);
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
    if (status >= 100 && status < 200) {
      at = split + 4;
      continue;
    }
    const header = (name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, 'im').exec(head)?.[1]?.trim();
    const contentType = header('content-type') ?? '';
    const start = split + 4;
    const length = header('content-length');
    if (length !== undefined) {
      const end = start + Number(length);
      if (buf.length < end) return undefined;
      return { status, contentType, body: buf.toString('utf8', start, end) };
    }
    if (/chunked/i.test(header('transfer-encoding') ?? '')) {
      let body = '';
      let p = start;
      for (;;) {
        const eol = buf.indexOf('\r\n', p);
        if (eol === -1) return undefined;
        const size = Number.parseInt(buf.toString('latin1', p, eol), 16);
        if (size === 0) return { status, contentType, body };
        if (buf.length < eol + 2 + size + 2) return undefined;
        body += buf.toString('utf8', eol + 2, eol + 2 + size);
        p = eol + 2 + size + 2;
      }
    }
    return closed ? { status, contentType, body: buf.toString('utf8', start) } : undefined;
  }
}

export function overRaw(port: number, ca: Buffer, bytes: Buffer, end: boolean): Promise<Outcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let ended = end;
    let lateEnd = false;
    let settled = false;
    const finish = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(answerTimer);
      clearTimeout(closeTimer);
      socket.destroy();
      resolve(outcome);
    };
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      socket.write(bytes);
      if (end) socket.end();
    });
    let closeTimer: NodeJS.Timeout | undefined;
    const answerTimer = setTimeout(() => {
      if (!ended) {
        ended = true;
        lateEnd = true;
        socket.end();
      }
      closeTimer = setTimeout(() => finish({ kind: 'stalled' }), CLOSE_WAIT_MS);
    }, ANSWER_WAIT_MS);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const answer = firstResponse(Buffer.concat(chunks), false);
      if (answer !== undefined) finish({ kind: 'answer', answer, lateEnd });
    });
    socket.on('error', () => {}); // a reset after the server gave up on us: the close follows
    socket.on('close', () => {
      const answer = firstResponse(Buffer.concat(chunks), true);
      finish(answer === undefined ? { kind: 'closed', lateEnd } : { kind: 'answer', answer, lateEnd });
    });
  });
}

export function overAgent(agent: Agent, port: number, req: HttpRequest): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: Outcome) => {
      if (!settled) {
        settled = true;
        resolve(outcome);
      }
    };
    // Node's client keys headers by lower-case name: a repeated header must be one array to be sent twice.
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of req.headers) {
      const existing = headers[name.toLowerCase()];
      headers[name.toLowerCase()] = existing === undefined ? value : [...[existing].flat(), value];
    }
    if (!req.noLength) headers['content-length'] = String(req.body.length);
    const outgoing = request(
      {
        host: '127.0.0.1',
        port,
        path: req.path,
        method: req.method,
        headers,
        agent,
        servername: 'localhost',
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          finish({
            kind: 'answer',
            lateEnd: false,
            answer: {
              status: res.statusCode ?? 0,
              contentType: String(res.headers['content-type'] ?? ''),
              body: Buffer.concat(chunks).toString(),
            },
          }),
        );
        res.on('error', () => finish({ kind: 'closed', lateEnd: false }));
      },
    );
    outgoing.setTimeout(ANSWER_WAIT_MS + CLOSE_WAIT_MS, () => {
      outgoing.destroy();
      finish({ kind: 'stalled' });
    });
    outgoing.on('error', () => finish({ kind: 'closed', lateEnd: false }));
    outgoing.end(req.body);
  });
}

/** Why an outcome is wrong for its case, or undefined when it is acceptable. */
export function judge(c: Case, outcome: Outcome): string | undefined {
  if (outcome.kind === 'stalled') return 'no answer and no close after the client half-closed';
  if (outcome.kind === 'closed') return undefined;
  const { status, contentType, body } = outcome.answer;
  if (outcome.lateEnd && status === 408)
    return 'answered 408: waited for a timeout after the client half-closed';
  if (status >= 200 && status < 300) return `accepted (${status}) a malformed request`;
  if (status >= 500 && status !== 501 && !c.expect.includes(status))
    return `answered ${status}: the sender's fault is never a 5xx`;
  if (!REFUSED.includes(status) && !c.expect.includes(status))
    return `answered ${status}, not a refusal of the contract`;
  if (!c.expect.includes(status)) return `answered ${status}, expected ${c.expect.join('/')}`;
  let parsed: { message?: unknown; code?: unknown };
  try {
    parsed = JSON.parse(body);
  } catch {
    return `answered ${status} without a JSON body: ${JSON.stringify(body.slice(0, 80))}`;
  }
  if (!/^application\/json/i.test(contentType))
    return `answered ${status} as ${contentType || 'no content type'}`;
  if (typeof parsed.message !== 'string' || typeof parsed.code !== 'string') {
    return `answered ${status} without a string message and code: ${body.slice(0, 120)}`;
  }
  if (c.codes !== undefined && !c.codes.includes(parsed.code)) {
    return `answered ${status} ${parsed.code}, expected ${c.codes.join('/')}`;
  }
  return undefined;
}

export function preview(c: Case): string {
  const bytes = c.raw ?? (c.http === undefined ? Buffer.alloc(0) : serialise(c.http));
  return JSON.stringify(bytes.subarray(0, 160).toString('latin1'));
}
