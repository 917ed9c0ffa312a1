// What `segment-endpoint load` sends: Segment's events (the shapes of `segment-endpoint test`) in a
// track-heavy mix, each with a new messageId, under Segment's headers; and now and then a retry, an event
// sent again unchanged, as Segment does when an answer was lost.
import { randomUUID } from 'node:crypto';
import { suite } from '../tester/suite.ts';
import { EVENT_TYPES, type EventType } from '../types.ts';

/** Of every 100 new events, how many are of each type: track-heavy, as most Segment sources are. */
export const MIX: Readonly<Record<EventType, number>> = Object.freeze({
  track: 50,
  page: 20,
  identify: 15,
  screen: 5,
  group: 5,
  alias: 3,
  delete: 2,
});

/** One request in this many is a retry of an event already sent: same messageId, same body. */
export const RETRY_EVERY = 100;
/** How many requests after the first sending the retry goes: later, likely on another connection. */
const RETRY_DISTANCE = 50;
const USERS = 1000; // distinct userIds the events are spread over

/** What was sent so far: new events by type, and retries. */
export interface Sent {
  readonly types: Readonly<Record<EventType, number>>;
  readonly retries: number;
}

/**
 * The order of types in each 100 new events: every type in its share, spread evenly (smooth weighted
 * round-robin), so that even a short run sends each type and any 100 in a row are the mix exactly.
 */
export function typeCycle(mix: Readonly<Record<EventType, number>> = MIX): EventType[] {
  const total = EVENT_TYPES.reduce((sum, type) => sum + mix[type], 0);
  const current = counts();
  const cycle: EventType[] = [];
  for (let i = 0; i < total; i++) {
    for (const type of EVENT_TYPES) current[type] += mix[type];
    const best = EVENT_TYPES.reduce((a, b) => (current[b] > current[a] ? b : a));
    current[best] -= total;
    cycle.push(best);
  }
  return cycle;
}

/**
 * The event bodies, one per call, shared by every connection: the mix in order, every RETRY_EVERY-th a
 * retry of the one sent RETRY_DISTANCE calls before. `sent()` counts what was handed out.
 */
export function eventSource(
  apiKey: string,
  only: readonly EventType[] = EVENT_TYPES,
): { next(): Buffer; sent(): Sent } {
  const templates = eventTemplates(apiKey);
  // The types left out (--types) get no share; the others keep theirs.
  const cycle = typeCycle(
    Object.fromEntries(EVENT_TYPES.map((type) => [type, only.includes(type) ? MIX[type] : 0])) as Record<
      EventType,
      number
    >,
  );
  const types = counts();
  const recent: Buffer[] = [];
  let calls = 0;
  let fresh = 0;
  let retries = 0;
  return {
    next() {
      const n = calls++;
      const slot = n % RETRY_DISTANCE;
      const again = recent[slot];
      if (n % RETRY_EVERY === RETRY_EVERY - 1 && again !== undefined) {
        retries++;
        return again;
      }
      const type = cycle[fresh % cycle.length] as EventType;
      const body = Buffer.from(JSON.stringify(newEvent(templates[type], fresh++)));
      types[type]++;
      recent[slot] = body;
      return body;
    },
    sent: () => ({ types: { ...types }, retries }),
  };
}

/** A zero for each type. */
function counts(): Record<EventType, number> {
  return Object.fromEntries(EVENT_TYPES.map((type) => [type, 0])) as Record<EventType, number>;
}

/** One event of each type, as `segment-endpoint test` sends it. */
function eventTemplates(apiKey: string): Record<EventType, Readonly<Record<string, unknown>>> {
  const cases = suite({ id: 'load', apiKey, now: new Date() });
  const templates: Partial<Record<EventType, Readonly<Record<string, unknown>>>> = {};
  for (const type of EVENT_TYPES) {
    const body = cases.find((c) => c.name === type)?.body;
    if (body === undefined || typeof body === 'string')
      throw new Error(`the test suite has no ${type} event`);
    templates[type] = body;
  }
  return templates as Record<EventType, Readonly<Record<string, unknown>>>;
}

/** The template made a new event: its own messageId, a user of USERS, the times of now. */
function newEvent(template: Readonly<Record<string, unknown>>, n: number): Record<string, unknown> {
  const now = Date.now();
  const at = (ms: number) => new Date(now - ms).toISOString();
  return {
    ...template,
    messageId: randomUUID(),
    userId: `user-${n % USERS}`,
    originalTimestamp: at(1_300),
    sentAt: at(1_200),
    receivedAt: at(0),
    timestamp: at(100),
  };
}
