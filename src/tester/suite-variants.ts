// The variants of good events real senders produce: every endpoint must accept each (suite.ts).

import { base64 } from './headers.ts';
import { TRAITS } from './samples.ts';
import type { Make, TestCase } from './suite.ts';

/** The variants of events real senders produce (casing, leniency): each must be accepted. */
export function variants({ event, without }: Make): TestCase[] {
  return [
    {
      name: 'track by anonymousId only',
      expect: 'accept',
      body: without(event('track', { event: 'Product Viewed' }), 'userId'),
    },
    { name: 'casing: "type": "Track"', expect: 'accept', body: event('Track', { event: 'Signed Up' }) },
    {
      name: 'casing: UserId',
      expect: 'accept',
      body: without(event('identify', { UserId: 'user-1234', traits: TRAITS }), 'userId', 'anonymousId'),
    },
    {
      name: 'casing: user_id',
      expect: 'accept',
      body: without(event('track', { user_id: 'user-1234', event: 'Signed Up' }), 'userId', 'anonymousId'),
    },
    {
      name: 'casing: USERID',
      expect: 'accept',
      body: without(event('identify', { USERID: 'user-1234', traits: TRAITS }), 'userId', 'anonymousId'),
    },
    { name: 'casing: "type": "TRACK"', expect: 'accept', body: event('TRACK', { event: 'Signed Up' }) },
    {
      name: "lenient: a top-level key of the customer's own",
      expect: 'accept',
      body: event('track', { event: 'Signed Up', experimentGroup: 'b' }),
    },
    {
      // Any field may be missing unless the contract says it must be there: a messageId too.
      name: 'lenient: no messageId',
      expect: 'accept',
      body: without(event('track', { event: 'Signed Up' }), 'messageId'),
    },
    {
      // As Segment sends an anonymous visitor's events.
      name: 'lenient: userId null, anonymousId set',
      expect: 'accept',
      body: event('track', { event: 'Product Viewed', userId: null }),
    },
    {
      name: 'lenient: null context and integrations',
      expect: 'accept',
      body: event('track', { event: 'Signed Up', context: null, integrations: null }),
    },
    {
      name: 'lenient: string version, non-ISO originalTimestamp',
      expect: 'accept',
      body: event('identify', {
        traits: TRAITS,
        version: '1.1',
        originalTimestamp: 'Mon Feb 23 2015 14:28:55 GMT-0800',
      }),
    },
    {
      name: 'lenient: delete with [] context and null integrations',
      expect: 'accept',
      body: without(event('delete', { channel: 'server', context: [], integrations: null }), 'anonymousId'),
    },
  ];
}

/** The headers' variants (the settings', the Basic scheme's forms): each must be accepted. */
export function headerVariants({ run, event }: Make): TestCase[] {
  return [
    // Settings of {} say what no header says; with --settings, every case carries the customer's own.
    ...(run.settings
      ? []
      : [
          {
            name: 'settings: X-Segment-Settings of {}, as when absent',
            expect: 'accept',
            body: event('track', { event: 'Signed Up' }),
            headers: { 'X-Segment-Settings': base64('{}') },
          } as const,
        ]),
    {
      name: 'auth: scheme in lower case',
      expect: 'accept',
      body: event('track', { event: 'Signed Up' }),
      headers: { Authorization: `basic ${base64(`${run.apiKey}:`)}` },
    },
    {
      name: 'auth: no trailing colon, base64(key)',
      expect: 'accept',
      body: event('track', { event: 'Signed Up' }),
      headers: { Authorization: `Basic ${base64(run.apiKey)}` },
    },
  ];
}
