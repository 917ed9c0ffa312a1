// Options a partner gets wrong are refused when the handler is made, naming the option; and what a
// partner's handler or authenticate answers outside the contract is a logged 500 (never a pass, a crash,
// a leak of internals or a request left hanging).
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import {
  type Context,
  createHandler,
  EndpointError,
  type HandlerOptions,
  jsonLogger,
  RetryError,
  silentLogger,
  ValidationError,
} from '../src/index.ts';
import { API_KEY, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';

const base = { apiKeys: [API_KEY], log: silentLogger, handlers: { track: () => {} } };
const make = (options: Record<string, unknown>) => createHandler({ ...base, ...options } as HandlerOptions);

describe('refused when the handler is made', () => {
  test('a logger without the methods the endpoint calls', () => {
    for (const log of [{}, { error() {}, warn() {}, info() {} }, 'console']) {
      assert.throws(() => make({ log }), /options\.log must be a logger with error, warn, info and debug/);
    }
  });

  test('a switch given anything but true or false', () => {
    for (const [name, value] of [
      ['trackingApi', 'false'],
      ['trackingApi', 0],
      ['accessLog', 'yes'],
      ['signatureLegacyBatch', 1],
    ] as const) {
      assert.throws(
        () => make({ [name]: value }),
        new RegExp(`options\\.${name} must be true or false`),
        name,
      );
    }
  });

  test('a key given as a string where an array or a function goes: refused without the key in the message', () => {
    // `apiKeys: process.env.SEGMENT_API_KEY` is an easy slip, and hosts log a start-up error.
    const secret = 'sk_live_9f8e7d6c5b4a';
    for (const [options, re] of [
      [{ apiKeys: secret }, /options\.apiKeys must be an array of keys, got a string/],
      [
        { apiKeys: undefined, authenticate: secret },
        /options\.authenticate must be a function, got a string/,
      ],
    ] as const) {
      assert.throws(
        () => make(options),
        (err: Error) => re.test(err.message) && !err.message.includes(secret),
        JSON.stringify(Object.keys(options)),
      );
    }
  });

  test('apiKeys and authenticate together: one would be ignored', () => {
    assert.throws(
      () => make({ authenticate: () => true }),
      /give options\.apiKeys or options\.authenticate, not both/,
    );
  });

  test('handlers as an array', () => {
    assert.throws(() => make({ handlers: [] }), /options\.handlers must be an object of event handlers/);
  });

  test('a health, live or metrics path that is one of the Tracking API routes under path', () => {
    for (const name of ['healthPath', 'livePath', 'metricsPath']) {
      assert.throws(
        () => make({ path: '/segment', [name]: '/segment/v1/page' }),
        new RegExp(`options\\.${name} .*Tracking API`),
        name,
      );
    }
  });

  test('a path with characters a request target cannot hold as they are', () => {
    assert.throws(() => make({ path: '/ségment' }), /options\.path must be ASCII/);
  });

  test('a maxDepth deeper than storing an event can go', () => {
    assert.throws(() => make({ maxDepth: 10_000 }), /options\.maxDepth must be/);
  });
});

describe('answered, not trusted', () => {
  test("a class instance's methods are its handlers, called on it", async () => {
    class Handlers {
      seen: string[] = [];
      track(event: { event?: string }, _ctx: Context) {
        this.seen.push(String(event.event));
      }
    }
    const handlers = new Handlers();
    const handler = createHandler({ ...base, handlers });
    assert.equal((await inject(handler, { body: trackEvent({ event: 'Signed Up' }) })).status, 200);
    assert.deepEqual(handlers.seen, ['Signed Up']);
  });

  test("a method a class inherits from a built-in (a Map's delete) is no handler: its events are 501, and said at start", async () => {
    // Found by a probe: a class extending Map took Map.prototype.delete for its delete handler, and
    // answered every GDPR deletion 200 without honouring it; Segment never retries a 200.
    const lines: string[] = [];
    const log = jsonLogger('debug', (line) => lines.push(JSON.parse(line).msg));
    class Contacts extends Map<string, unknown> {
      identify(event: { userId?: unknown }) {
        this.set(String(event.userId), event);
      }
    }
    const handler = make({ handlers: new Contacts(), log });
    const res = await inject(handler, { body: { type: 'delete', userId: 'u1' } });
    assert.equal(res.status, 501, res.body);
    assert.ok(
      lines.includes(
        'options.handlers.delete is inherited from Map, not a handler: delete events are answered 501',
      ),
      lines.join('\n'),
    );
  });

  test("a class instance's method one slip from a type it has no handler for is warned of at start; its other methods are its own", () => {
    // A misspelt method left identify events unhandled: each answered 501, which Segment does not retry.
    // Refusing such a class at start refused real ones (save() near page, a Writable's pipe()): a
    // class's methods are its own business, so one a typo away from a missing type is said, not refused.
    const warned = (handlers: object) => {
      const lines: string[] = [];
      const log = jsonLogger('debug', (line) => lines.push(JSON.parse(line).msg));
      make({ handlers, log });
      return lines.filter((line) => line.includes('options.handlers.'));
    };
    class Misspelt {
      track() {}
      idenitfy() {}
      pgae() {}
    }
    assert.deepEqual(warned(new Misspelt()), [
      'options.handlers.idenitfy is not a Segment event type: did you mean identify? identify events are answered 501',
      'options.handlers.pgae is not a Segment event type: did you mean page? page events are answered 501',
    ]);
    class Helpers extends Writable {
      readonly db = new Map<string, unknown>();
      readonly drop = () => this.db.clear();
      track(event: unknown) {
        this.trace(event);
      }
      trace(event: unknown) {
        this.db.set('last', event);
      }
      save() {}
      parse() {}
      get idenitfy() {
        return undefined;
      }
    }
    assert.deepEqual(warned(new Helpers()), []);
  });

  test('an authenticate decision with a key it does not know is a 500, not every type allowed', async () => {
    for (const decision of [{ types: ['track'] }, { Allow: ['track'] }, { allowed: ['track'] }]) {
      const logged: string[] = [];
      const log = jsonLogger('debug', (line) => logged.push(JSON.parse(line).msg));
      const handler = make({ apiKeys: undefined, authenticate: () => decision, log });
      const res = await inject(handler, { body: trackEvent() });
      assert.equal(res.status, 500, JSON.stringify(decision));
      // No handler ran: the log says the request failed, not that a handler did.
      assert.deepEqual(logged, ['request failed']);
    }
  });

  test('a thrown EndpointError SEG_INTERNAL: the generic message answered, its own logged', async () => {
    const logged: string[] = [];
    const handler = make({
      log: jsonLogger('debug', (line) => logged.push(line)),
      handlers: {
        track: () => {
          throw new EndpointError(
            'SEG_INTERNAL',
            'password authentication failed for user "app" at 10.0.3.7',
          );
        },
      },
    });
    const res = await inject(handler, { body: trackEvent() });
    assert.equal(res.status, 500);
    assert.doesNotMatch(res.body, /10\.0\.3\.7|password/);
    assert.ok(
      logged.some((line) => line.includes('10.0.3.7')),
      logged.join('\n'),
    );
  });

  test('a rejection without a reason is a 500, and logged', async () => {
    const logged: string[] = [];
    const handler = make({
      log: jsonLogger('debug', (line) => logged.push(line)),
      handlers: { track: () => Promise.reject() },
    });
    assert.equal((await inject(handler, { body: trackEvent() })).status, 500);
    assert.ok(
      logged.some((line) => /event handler failed/.test(line)),
      logged.join('\n'),
    );
  });

  test('a thrown value whose every property access throws it again: a 500, the process running', async () => {
    const poison: Record<string, unknown> = new Proxy(
      {},
      {
        get() {
          throw poison;
        },
        getPrototypeOf() {
          throw poison;
        },
      },
    );
    for (const track of [
      () => {
        throw poison;
      },
      async () => {
        throw poison;
      },
      () => poison,
    ]) {
      const handler = make({ handlers: { track } });
      const res = await inject(handler, { body: trackEvent() });
      assert.equal(res.status, 500);
      assert.equal(handler.inFlight, 0);
    }
  });

  test('Retry-After is always delay-seconds: a whole number from 1 up', async () => {
    for (const retryAfter of [-5, Number.NaN, 1e300, 'soon\r\nX-Evil: 1' as unknown as number]) {
      const handler = make({
        handlers: {
          track: () => {
            throw new EndpointError('SEG_RATE_LIMITED', undefined, { retryAfter });
          },
        },
      });
      const res = await inject(handler, { body: trackEvent() });
      assert.equal(res.status, 429, String(retryAfter));
      assert.match(res.headers['retry-after'] ?? '', /^[1-9]\d{0,4}$/, String(retryAfter));
    }
    const slow = make({ apiKeys: undefined, authenticate: () => ({ rate: 1e-300 }) });
    await inject(slow, { body: trackEvent() });
    const limited = await inject(slow, { body: trackEvent() });
    assert.equal(limited.status, 429);
    assert.match(limited.headers['retry-after'] ?? '', /^[1-9]\d{0,4}$/);
  });

  test('a handler asks for its own wait: RetryError with retryAfter, or a thrown 429/503 with retryAfter', async () => {
    // A downstream that says "come back in 30 s" (its own Retry-After): the wait was always 1 s.
    const throwing = (err: unknown) => make({ handlers: { track: () => Promise.reject(err) } });
    const cases: Array<[unknown, number, string]> = [
      [new RetryError('CRM busy', { retryAfter: 30 }), 503, '30'],
      [new RetryError('CRM busy'), 503, '1'],
      [Object.assign(new Error('slow down'), { status: 429, retryAfter: 12.5 }), 429, '13'],
      [Object.assign(new Error('down'), { statusCode: 503, retryAfter: 45 }), 503, '45'],
      [Object.assign(new Error('down'), { status: 503, retryAfter: 'soon' }), 503, '1'],
      [Object.assign(new Error('bad gateway'), { status: 502, retryAfter: 45 }), 502, ''],
    ];
    for (const [err, status, retryAfter] of cases) {
      const res = await inject(throwing(err), { body: trackEvent() });
      assert.equal(res.status, status, String(err));
      assert.equal(res.headers['retry-after'] ?? '', retryAfter, String(err));
    }
  });

  test("a refusal's message is cut to 1,000 characters: a handler's 10 MB message is not sent whole", async () => {
    const handler = make({
      handlers: {
        track: () => {
          throw new ValidationError('x'.repeat(10_000_000));
        },
      },
    });
    const res = await inject(handler, { body: trackEvent() });
    assert.equal(res.status, 400);
    assert.equal(res.json().message?.length, 1_001); // and an ellipsis
  });

  test('a handler throwing SEG_BODY_ABORTED, its client still there, is answered', async () => {
    const handler = make({
      handlers: {
        track: () => {
          throw new EndpointError('SEG_BODY_ABORTED');
        },
      },
    });
    assert.equal((await inject(handler, { body: trackEvent() })).status, 400);
  });
});
