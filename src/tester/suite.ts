import { base64 } from './headers.ts';
import { MOBILE, ORDER, SERVER, TRAITS, WEB } from './samples.ts';
import { headerVariants, variants } from './suite-variants.ts';

// The events `segment-endpoint test` sends: every type as Segment sends it, the variants real senders
// produce, and deliberately bad ones with the 4xx each must get. Only answers every endpoint following
// the partner contract owes are expected, so the suite works against any endpoint.

/** What a case must be answered: `'accept'` is 200 or 202; else that status, or any of those statuses. */
export type Expectation = 'accept' | number | readonly number[];

export interface TestCase {
  readonly name: string;
  /** An object is sent as its JSON; a string is sent as is (bodies that are not events). */
  readonly body: Readonly<Record<string, unknown>> | string;
  /** Headers replaced (names in any case), or left out when `null`. */
  readonly headers?: Readonly<Record<string, string | null>>;
  readonly expect: Expectation;
}

/** What makes one run's events its own: a fresh id (so every `messageId` is new), the key, the clock. */
export interface SuiteRun {
  readonly id: string;
  readonly apiKey: string;
  readonly now: Date;
  /** Whether every event carries the customer's settings (`--settings`): no case then sends its own. */
  readonly settings?: boolean;
}

/** The suite. Good events first, then the ones every endpoint must refuse, each with its status. */
export function suite(run: SuiteRun): TestCase[] {
  let n = 0;
  const at = (ms: number) => new Date(run.now.getTime() - ms).toISOString();
  // The envelope Segment puts around every event (cf. the partner docs' identify example). The case's own
  // fields are spread first too, so they lead the printed (truncated) body: a key keeps its first place.
  const event = (type: string, fields: Record<string, unknown>, mobile = false) => ({
    type,
    ...fields,
    messageId: `test-${run.id}-${++n}`,
    anonymousId: '507f191e810c19729de860ea',
    userId: 'user-1234',
    channel: mobile ? 'mobile' : 'client',
    context: mobile ? MOBILE : WEB,
    integrations: {},
    originalTimestamp: at(1_300),
    sentAt: at(1_200),
    receivedAt: at(0),
    timestamp: at(100),
    version: 2,
    ...fields,
  });
  const track = event('track', { event: 'Order Completed', properties: ORDER });
  const without = (body: Record<string, unknown>, ...keys: string[]) =>
    Object.fromEntries(Object.entries(body).filter(([key]) => !keys.includes(key)));

  const make: Make = { run, event, track, without };
  return [...accepted(make), ...variants(make), ...headerVariants(make), ...refused(make)];
}

/** What the cases are made with: the run, an event in Segment's envelope, a track, a body less keys. */
export interface Make {
  readonly run: SuiteRun;
  readonly event: (
    type: string,
    fields: Record<string, unknown>,
    mobile?: boolean,
  ) => Record<string, unknown>;
  readonly track: Record<string, unknown>;
  readonly without: (body: Record<string, unknown>, ...keys: string[]) => Record<string, unknown>;
}

/** Every type as Segment sends it, and a retry: each must be accepted. */
function accepted({ event, track, without }: Make): TestCase[] {
  return [
    { name: 'identify', expect: 'accept', body: event('identify', { traits: TRAITS }) },
    { name: 'track', expect: 'accept', body: track },
    {
      name: 'page',
      expect: 'accept',
      body: event('page', { name: 'Pricing', category: 'Docs', properties: { path: '/pricing' } }),
    },
    {
      name: 'screen',
      expect: 'accept',
      body: event('screen', { name: 'Checkout', properties: { step: 2 } }, true),
    },
    {
      name: 'group',
      expect: 'accept',
      body: event('group', { groupId: 'acct-42', traits: { name: 'Initech', employees: 120, plan: 'team' } }),
    },
    { name: 'alias', expect: 'accept', body: event('alias', { previousId: '507f191e810c19729de860ea' }) },
    {
      // A user-deletion request (GDPR/CCPA) as Segment sends it: from the server, by userId alone.
      name: 'delete',
      expect: 'accept',
      body: without(
        event('delete', { channel: 'server', context: SERVER, projectId: 'src-1' }),
        'anonymousId',
      ),
    },
    { name: 'track again, same messageId (a retry)', expect: 'accept', body: track },
  ];
}

/** Events every endpoint must refuse, each with the status it owes. */
function refused({ run, event, without }: Make): TestCase[] {
  return [
    { name: 'bad: malformed JSON', expect: 400, body: '{"type":"track","event":"Signed Up","userId":' },
    { name: 'bad: not an object', expect: 400, body: '"track"' },
    { name: 'bad: null, not an event', expect: 400, body: 'null' },
    { name: 'bad: no type', expect: 400, body: without(event('track', { event: 'Signed Up' }), 'type') },
    {
      // Not a Segment type: 501 (a type this endpoint does not take) and 400 (malformed) are both final.
      name: 'bad: unknown type "purchase"',
      expect: [400, 501],
      body: event('purchase', { event: 'Signed Up' }),
    },
    { name: 'bad: track without event', expect: 400, body: event('track', { properties: ORDER }) },
    {
      name: 'bad: group without groupId',
      expect: 400,
      body: event('group', { traits: { name: 'Initech' } }),
    },
    {
      name: 'bad: identify without userId or anonymousId',
      expect: 400,
      body: without(event('identify', { traits: TRAITS }), 'userId', 'anonymousId'),
    },
    { name: 'bad: alias without previousId', expect: 400, body: event('alias', {}) },
    { name: 'bad: delete without userId', expect: 400, body: without(event('delete', {}), 'userId') },
    {
      name: 'bad: wrong API key',
      expect: 401,
      body: event('track', { event: 'Signed Up' }),
      headers: { Authorization: `Basic ${base64(`not-a-key-${run.id}:`)}` },
    },
    {
      // The key with a character more, and less its last: a comparison that stops at one key's length
      // takes them for it.
      name: 'bad: the API key with a character more',
      expect: 401,
      body: event('track', { event: 'Signed Up' }),
      headers: { Authorization: `Basic ${base64(`${run.apiKey}x:`)}` },
    },
    {
      name: 'bad: the API key less its last character',
      expect: 401,
      body: event('track', { event: 'Signed Up' }),
      headers: { Authorization: `Basic ${base64(`${run.apiKey.slice(0, -1)}:`)}` },
    },
    {
      name: 'bad: no Authorization',
      expect: 401,
      body: event('track', { event: 'Signed Up' }),
      headers: { Authorization: null },
    },
    {
      // Segment's own credentials under another scheme: an endpoint must read the scheme, not only
      // decode what follows it. Base64, so that any key can be sent (a key beyond Latin-1 cannot be a
      // header's value as it is).
      name: 'bad: Authorization not Basic',
      expect: 401,
      body: event('track', { event: 'Signed Up' }),
      headers: { Authorization: `Bearer ${base64(`${run.apiKey}:`)}` },
    },
    {
      name: 'bad: X-Segment-Settings not base64 of JSON',
      expect: 400,
      body: event('track', { event: 'Signed Up' }),
      headers: { 'X-Segment-Settings': base64('region=eu') },
    },
    {
      name: 'bad: X-Segment-Settings a JSON array',
      expect: 400,
      body: event('track', { event: 'Signed Up' }),
      headers: { 'X-Segment-Settings': base64('["eu"]') },
    },
  ];
}
