// Realistic Segment destination payloads used by the side-by-side benchmark: the reference mix of issue 10
// (../shared/bench/events.mjs), six types, API key `segment`. mklua.mjs turns it into wrk's script.
const base = (i) => ({
  anonymousId: `anon-${i}`,
  context: {
    ip: '8.8.8.8',
    library: { name: 'analytics.js', version: '2.11.1' },
    page: {
      path: '/pricing',
      referrer: 'https://example.com/',
      title: 'Pricing',
      url: 'https://example.com/pricing',
    },
    userAgent:
      'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/40.0.2214.115 Safari/537.36',
  },
  integrations: {},
  messageId: `022bb90c-bbac-11e4-8dfc-aa07a5b0${String(i).padStart(4, '0')}`,
  receivedAt: '2015-02-23T22:28:55.387Z',
  sentAt: '2015-02-23T22:28:55.111Z',
  timestamp: '2015-02-23T22:28:55.111Z',
  userId: `user-${i}`,
  version: 1,
});
export const events = [
  {
    ...base(1),
    type: 'identify',
    traits: { name: 'John Doe', email: 'john.doe@email.com', plan: 'premium', logins: 5 },
  },
  {
    ...base(2),
    type: 'track',
    event: 'Order Completed',
    properties: {
      order_id: '50314b8e9bcf000000000000',
      total: 27.5,
      revenue: 25,
      currency: 'USD',
      products: [
        { product_id: '507f1f77bcf86cd799439011', sku: '45790-32', name: 'Monopoly', price: 19, quantity: 1 },
      ],
    },
  },
  {
    ...base(3),
    type: 'page',
    name: 'Pricing',
    category: 'Docs',
    properties: { path: '/pricing', title: 'Pricing', url: 'https://example.com/pricing' },
  },
  {
    ...base(4),
    type: 'group',
    groupId: '0e8c78ea9d97a7b8185e8632',
    traits: { name: 'Initech', industry: 'Technology', employees: 329, plan: 'enterprise' },
  },
  { ...base(5), type: 'screen', name: 'Home', properties: { variation: 'blue' } },
  { ...base(6), type: 'alias', previousId: 'anon-6', userId: 'user-6' },
];
export const apiKey = 'segment';
export const settings = Buffer.from(JSON.stringify({ region: 'eu', listId: 'abc123' })).toString('base64');
export const headers = {
  accept: '*/*',
  authorization: `Basic ${Buffer.from(`${apiKey}:`).toString('base64')}`,
  'cache-control': 'no-cache',
  connection: 'Keep-Alive',
  'content-type': 'application/json',
  'user-agent': 'Segment.io/1.0',
  'x-segment-settings': settings,
};
