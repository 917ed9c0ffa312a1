// A partner's own node:http app that receives Segment events on /segment next to its other routes.
// Plain HTTP: in production a TLS-terminating proxy (nginx, a load balancer) sits in front.
//
//   node --conditions=segment-endpoint-source --import tsx examples/embed.ts
//   PORT=3000 SEGMENT_API_KEY=dev-key by default; prints the URL to give Segment.
import { realpathSync } from 'node:fs';
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import {
  createHandler,
  type EndpointHandler,
  field,
  type Handlers,
  jsonLogger,
  type Logger,
  RetryError,
  type SegmentEvent,
  silentLogger,
  type TrackEvent,
  ValidationError,
} from 'segment-endpoint';

/** Track events waiting for the background worker; past this, Segment is asked to retry later. */
const MAX_QUEUE = 10_000;

export interface Contact {
  readonly account: string;
  readonly userId: string;
  readonly email: string;
  readonly traits: Readonly<Record<string, unknown>>;
}

/** An accepted event and the account (the partner's customer) that sent it. */
export interface Received<E extends SegmentEvent = SegmentEvent> {
  readonly account: string;
  readonly event: E;
}

export interface ExampleOptions {
  /** API key → the partner's own account id. Each customer pastes its key into Segment. */
  accounts?: ReadonlyMap<string, string>;
  /** @default '127.0.0.1': only the local TLS proxy talks to this app */
  host?: string;
  /** @default silentLogger */
  log?: Logger;
}

export interface Example {
  /** Where Segment POSTs events, e.g. http://127.0.0.1:3000/segment */
  readonly url: string;
  /** The app's own status route, served by the same server. */
  readonly statusUrl: string;
  /** Every event accepted, in order (a user's events are removed when a delete arrives). */
  readonly received: Received[];
  /** Contacts by `${account}/${userId}`, from identify. */
  readonly contacts: Map<string, Contact>;
  /** Track events accepted with 202, for a worker to process later. */
  readonly queue: Received<TrackEvent>[];
  /** `${account}/${userId}` of every user whose data was deleted. */
  readonly deletions: string[];
  readonly segment: EndpointHandler;
  /** Stops taking events (503), lets running ones finish, then closes the server. */
  close(): Promise<void>;
}

export async function startExample(port = 0, options: ExampleOptions = {}): Promise<Example> {
  const accounts = options.accounts ?? new Map([['dev-key', 'acme']]);
  const received: Received[] = [];
  const contacts = new Map<string, Contact>();
  const queue: Received<TrackEvent>[] = [];
  const deletions: string[] = [];
  // The key was checked before any handler runs, so it is always one of ours here.
  const accountOf = (apiKey: string) => accounts.get(apiKey) ?? 'unknown';
  // Who did it: one of the two may be empty (or null) when the other says (the schema holds one that does).
  const userOf = (event: SegmentEvent) => String(event.userId || event.anonymousId);

  const handlers: Handlers = {
    identify(event, ctx) {
      // Customers spell trait keys their own way: email, Email, EMAIL, e_mail.
      const email = field(event.traits, 'email');
      if (typeof email !== 'string' || email === '') throw new ValidationError('Missing email address');
      const account = accountOf(ctx.apiKey);
      const userId = userOf(event);
      contacts.set(`${account}/${userId}`, { account, userId, email, traits: { ...event.traits } });
      received.push({ account, event });
    },

    track(event, ctx) {
      // Answer fast and work later: Segment gives up on a request after about 5 s.
      if (queue.length >= MAX_QUEUE) throw new RetryError('Too many events queued, retry later');
      const item = { account: accountOf(ctx.apiKey), event };
      queue.push(item);
      received.push(item);
      return { status: 202 };
    },

    delete(event, ctx) {
      // A GDPR/CCPA deletion request: remove everything held about this user.
      const account = accountOf(ctx.apiKey);
      const userId = String(event.userId);
      contacts.delete(`${account}/${userId}`);
      const theirs = (item: Received) => item.account === account && userOf(item.event) === userId;
      removeWhere(queue, theirs);
      removeWhere(received, theirs);
      deletions.push(`${account}/${userId}`);
      ctx.log.info({ account }, 'user data deleted');
    },
  };

  const segment = createHandler({
    path: '/segment',
    healthPath: '/segment/health',
    apiKeys: accounts.keys(),
    handlers,
    log: options.log ?? silentLogger,
  });

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path === '/segment' || path.startsWith('/segment/')) {
      segment(req, res);
    } else if (path === '/status') {
      status(req, res);
    } else {
      sendJson(res, 404, { message: 'Not found' });
    }
  });

  function status(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET') {
      sendJson(res, 405, { message: 'Method not allowed: use GET' }, { allow: 'GET' });
      return;
    }
    sendJson(res, 200, {
      ok: !segment.draining,
      contacts: contacts.size,
      queued: queue.length,
      inFlight: segment.inFlight,
    });
  }

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const origin = `http://${host}:${(server.address() as AddressInfo).port}`;

  async function close(): Promise<void> {
    segment.drain();
    const closed = new Promise<void>((resolve, reject) =>
      server.close((err) => (err === undefined ? resolve() : reject(err))),
    );
    await segment.idle();
    server.closeIdleConnections();
    await closed;
  }

  return {
    url: `${origin}/segment`,
    statusUrl: `${origin}/status`,
    received,
    contacts,
    queue,
    deletions,
    segment,
    close,
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown, extra?: OutgoingHttpHeaders): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...extra,
  });
  res.end(text);
}

function removeWhere<T>(list: T[], drop: (item: T) => boolean): void {
  let kept = 0;
  for (const item of list) if (!drop(item)) list[kept++] = item;
  list.length = kept;
}

// Started only when run directly, not when a test imports it.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  const apiKey = process.env.SEGMENT_API_KEY || 'dev-key';
  const example = await startExample(Number(process.env.PORT ?? 3000), {
    accounts: new Map([[apiKey, 'acme']]),
    log: jsonLogger('info'),
  });
  process.stdout.write(`listening on ${example.url} (status on ${example.statusUrl})\n`);
  const stop = () => {
    example.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
