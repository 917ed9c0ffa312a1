// Realistic events of every type, as Segment's partner delivery sends them: one per request, with the
// context a web or server library fills in, and Segment's exact headers. `[<id>]` is replaced by a
// unique id per request, so that no request is a duplicate of another (the idempotency filter would
// answer a duplicate without running the handler: a cheaper path than real traffic takes).

const context = {
  library: { name: 'analytics.js', version: '5.2.0' },
  ip: '203.0.113.7',
  locale: 'en-US',
  page: {
    path: '/pricing',
    referrer: 'https://www.example.com/',
    title: 'Pricing',
    url: 'https://app.example.com/pricing',
  },
  userAgent:
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  campaign: { name: 'autumn', source: 'newsletter', medium: 'email' },
};
const common = (type) => ({
  type,
  messageId: 'ajs-next-[<id>]',
  anonymousId: '5f1c6a5e-3b0e-4cf3-9b59-8d1b2b6f4a11',
  userId: 'user_8d2f1c',
  channel: 'client',
  context,
  integrations: {},
  originalTimestamp: '2026-11-26T10:00:00.000Z',
  receivedAt: '2026-11-26T10:00:00.512Z',
  sentAt: '2026-11-26T10:00:00.401Z',
  timestamp: '2026-11-26T10:00:00.111Z',
  version: 2,
});

export const events = [
  {
    ...common('identify'),
    traits: {
      email: 'ada@example.com',
      firstName: 'Ada',
      lastName: 'Lovelace',
      plan: 'pro',
      createdAt: '2024-03-01T00:00:00Z',
    },
  },
  {
    ...common('track'),
    event: 'Order Completed',
    properties: {
      orderId: 'o-1029',
      total: 149.5,
      currency: 'USD',
      products: [
        { sku: 'sku-1', price: 99.5, quantity: 1 },
        { sku: 'sku-2', price: 50, quantity: 1 },
      ],
    },
  },
  {
    ...common('page'),
    name: 'Pricing',
    category: 'Docs',
    properties: { path: '/pricing', title: 'Pricing', url: 'https://app.example.com/pricing' },
  },
  { ...common('screen'), name: 'Checkout', properties: { step: 2 } },
  {
    ...common('group'),
    groupId: 'acct_42',
    traits: { name: 'Acme Inc', industry: 'Manufacturing', employees: 420 },
  },
  { ...common('alias'), previousId: '5f1c6a5e-3b0e-4cf3-9b59-8d1b2b6f4a11' },
  { ...common('delete'), context: {}, integrations: null },
];

export const API_KEY = 'bench-key';
const settings = Buffer.from(JSON.stringify({ region: 'us', apiVersion: '2024-01' })).toString('base64');

/** Segment's headers, exactly (Content-Length is added by the client). */
export const headers = {
  authorization: `Basic ${Buffer.from(`${API_KEY}:`).toString('base64')}`,
  'content-type': 'application/json',
  'user-agent': 'Segment.io/1.0',
  accept: '*/*',
  'cache-control': 'no-cache',
  'x-segment-settings': settings,
};

export const bodies = events.map((event) => JSON.stringify(event));
