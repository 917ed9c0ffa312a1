// What the contract asks of an endpoint's HTTP beyond each event's answer, said by `segment-endpoint test`
// as warnings before its summary: no case fails for them. Segment keeps a connection alive across events
// "whenever possible", which an endpoint that closes it after each answer makes a TLS handshake an event;
// and HTTP answers a method other than POST with 405 and `Allow: POST`, though an endpoint embedded in a
// larger server may rightly route a GET on its path elsewhere.

import type { Agent as HttpAgent } from 'node:http';
import { type Answer, send } from './send.ts';

/**
 * `agent`, keeping each connection for the next case whatever the endpoint's `Keep-Alive: timeout=`
 * hint: node's own drops one hinted 1 s (the hint less a second), and the endpoint would be said to have
 * closed it. A connection the endpoint does close is met by the next case, sent once more on a new one.
 */
export function keptAlive<A extends HttpAgent>(agent: A): A {
  const keep = agent.keepSocketAlive.bind(agent);
  agent.keepSocketAlive = (socket) => {
    keep(socket);
    return true;
  };
  return agent;
}

/** A case's outcome, as far as its connection goes. */
interface Sent {
  readonly status?: number;
  readonly error?: string;
  readonly fresh?: boolean;
}

/**
 * The warning for an endpoint that closed the connection after accepted events (the next case went out
 * on a new one), or undefined. Only acceptances count: an endpoint may close after a refusal.
 */
export function closedWarning(results: readonly Sent[]): string | undefined {
  let accepted = 0;
  let closed = 0;
  for (const [i, r] of results.entries()) {
    const next = results[i + 1];
    if (next?.status === undefined || r.error !== undefined || (r.status !== 200 && r.status !== 202))
      continue;
    accepted++;
    if (next.fresh === true) closed++;
  }
  if (closed === 0) return undefined;
  return (
    `Warning: the connection was closed after ${closed} of ${accepted} accepted events: Segment keeps ` +
    'one alive across events whenever it can, and each new one costs a TLS handshake'
  );
}

/**
 * Sends a GET with Segment's headers, and the warning for an answer other than 405 with `Allow: POST`, or
 * undefined.
 */
export async function methodWarning(
  url: URL,
  headers: Readonly<Record<string, string>>,
  agent: HttpAgent,
  timeoutMs: number,
): Promise<string | undefined> {
  const why = 'Segment sends only POSTs, and HTTP answers another method with 405 and Allow: POST';
  let answer: Answer;
  try {
    answer = await send(url, headers, Buffer.alloc(0), agent, timeoutMs, 'GET');
  } catch (err) {
    return `Warning: a GET was not answered (${(err as Error).message}): ${why}`;
  }
  if (answer.status !== 405) {
    return `Warning: a GET was answered ${answer.status}, not 405 with Allow: POST: ${why} (unless another route of the server takes GETs at this URL)`;
  }
  // Method names are case-sensitive (RFC 9110): `post` is no POST.
  const allowed = (answer.allow ?? '').split(',').map((method) => method.trim());
  if (!allowed.includes('POST')) {
    return `Warning: a GET was answered 405 without Allow: POST, which HTTP requires with a 405 (it lists the methods taken)`;
  }
  if (allowed.includes('GET')) {
    return `Warning: a GET was answered 405, yet its Allow lists GET: Allow lists the methods the URL takes`;
  }
  return undefined;
}
