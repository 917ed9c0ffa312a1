// What the events of `segment-endpoint test` carry: contexts as Segment's libraries send them, traits and
// properties (suite.ts).

export const WEB = {
  library: { name: 'analytics.js', version: '5.2.0' },
  ip: '203.0.113.7',
  locale: 'en-US',
  page: { path: '/pricing', referrer: '', title: 'Pricing', url: 'https://example.com/pricing' },
  userAgent: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/120.0 Safari/537.36',
};
export const MOBILE = {
  library: { name: 'analytics-ios', version: '4.1.8' },
  app: { name: 'Example', version: '3.2.1', build: '321' },
  device: { manufacturer: 'Apple', model: 'iPhone15,2', type: 'ios' },
  os: { name: 'iOS', version: '17.2' },
  network: { wifi: true },
  timezone: 'Europe/Paris',
};
export const SERVER = { library: { name: 'unknown', version: 'unknown' } };
export const TRAITS = { name: 'Jane Kim', email: 'jane.kim@example.com', plan: 'premium', logins: 5 };
export const ORDER = {
  order_id: 'ord-1001',
  total: 59.9,
  currency: 'EUR',
  products: [{ sku: 'SKU-7', qty: 2 }],
};
