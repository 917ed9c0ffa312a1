import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { toErrorAnswer } from '../src/error-answer.ts';
import {
  EndpointError,
  ERRORS,
  EventNotSupported,
  ForbiddenError,
  InvalidEventPayload,
  quoted,
  RetryError,
  UnauthorizedError,
  ValidationError,
} from '../src/errors.ts';

const GENERIC_500 = ERRORS.SEG_INTERNAL.message;
const entries = Object.entries(ERRORS);

describe('the catalogue', () => {
  test('every code is unique, even ignoring case', () => {
    const codes = entries.map(([code]) => code.toUpperCase());
    assert.equal(new Set(codes).size, codes.length);
  });

  test('every code is SEG_ and upper snake case', () => {
    for (const [code] of entries) assert.match(code, /^SEG_[A-Z0-9]+(?:_[A-Z0-9]+)*$/);
  });

  test('every status is an integer from 400 to 599', () => {
    for (const [code, { status }] of entries) {
      assert.ok(Number.isInteger(status) && status >= 400 && status <= 599, `${code}: ${status}`);
    }
  });

  test('every message is non-empty, and no two codes share one', () => {
    for (const [code, { message }] of entries) assert.ok(message.trim() !== '', code);
    const messages = entries.map(([, { message }]) => message);
    assert.equal(new Set(messages).size, messages.length);
  });

  test("every code is in README's status table, with its status", () => {
    // Partners read the table, not this file: a code answered but missing there is a surprise to them.
    const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
    for (const [code, { status }] of entries) {
      assert.match(readme, new RegExp(`^\\| ${status} +\\|.*\\| \`${code}\` +\\|$`, 'm'), code);
    }
  });

  test('a 501 is only for what this endpoint will never take (Segment does not retry it)', () => {
    const notRetried = entries.filter(([, { status }]) => status === 501).map(([code]) => code);
    assert.deepEqual(notRetried.sort(), ['SEG_TRANSFER_CODING', 'SEG_TYPE_UNSUPPORTED']);
  });
});

describe('error classes', () => {
  const classes = [
    [ValidationError, 400, 'SEG_INVALID_EVENT'],
    [InvalidEventPayload, 400, 'SEG_INVALID_EVENT'],
    [EventNotSupported, 501, 'SEG_TYPE_UNSUPPORTED'],
    [RetryError, 503, 'SEG_RETRY'],
    [UnauthorizedError, 401, 'SEG_AUTH_UNKNOWN'],
    [ForbiddenError, 403, 'SEG_FORBIDDEN'],
  ] as const;

  for (const [Class, status, code] of classes) {
    test(`${Class.name} is ${status} ${code}`, () => {
      const err = new Class();
      assert.equal(err.status, status);
      assert.equal(err.code, code);
      assert.equal(err.status, ERRORS[err.code].status, 'the class agrees with the catalogue');
      assert.ok(err instanceof EndpointError);
      assert.ok(err instanceof Error);
      assert.equal(err.name, Class.name);
      assert.notEqual(err.message, '');
    });
  }

  test('a message and a cause of its own are kept', () => {
    const cause = new Error('socket hang up');
    const err = new RetryError('CRM is down, retry later', { cause });
    assert.equal(err.message, 'CRM is down, retry later');
    assert.equal(err.cause, cause);
  });

  test('made without a stack, which a batch of refused events paid for 2,500 times; the limit is left as it was', () => {
    const before = Error.stackTraceLimit;
    Error.stackTraceLimit = 7;
    try {
      const cause = new Error('downstream');
      const refusal = new ForbiddenError('no', { cause });
      assert.doesNotMatch(refusal.stack ?? '', /\n\s+at /, 'no frames');
      assert.match(refusal.stack ?? '', /^ForbiddenError: no/);
      assert.match(cause.stack ?? '', /\n\s+at /, 'its cause keeps its own');
      assert.equal(Error.stackTraceLimit, 7);
      const internal = new EndpointError('SEG_INTERNAL', 'broken');
      assert.match(internal.stack ?? '', /\n\s+at /, 'a 500 keeps its frames: it is logged to be found');
      assert.match(new Error('after').stack ?? '', /\n\s+at /);
    } finally {
      Error.stackTraceLimit = before;
    }
  });

  test('EndpointError without a message takes the catalogue message', () => {
    const err = new EndpointError('SEG_BODY_TOO_LARGE');
    assert.equal(err.message, ERRORS.SEG_BODY_TOO_LARGE.message);
    assert.equal(err.status, 413);
  });
});

describe('toErrorAnswer', () => {
  test('an EndpointError passes through, with no internal', () => {
    const answer = toErrorAnswer(new ValidationError('Missing email address'));
    assert.deepEqual(answer, { status: 400, code: 'SEG_INVALID_EVENT', message: 'Missing email address' });
  });

  test('an EndpointError 5xx passes through too: the partner chose its message', () => {
    const answer = toErrorAnswer(new RetryError('CRM is down'));
    assert.deepEqual(answer, { status: 503, code: 'SEG_RETRY', message: 'CRM is down' });
  });

  test('the classes of another copy of the library (a bundle, the package beside it) pass through too', async () => {
    // The one-file bundle and the SEA binary hold a copy of these classes; a --handlers module imports
    // the package's: its RetryError was not the bundle's, and was answered as a foreign 503.
    const another: string = '../src/errors.ts?another-copy'; // a URL of its own: a module of its own
    const copy = (await import(another)) as typeof import('../src/errors.ts');
    assert.notEqual(copy.RetryError, RetryError);
    assert.deepEqual(toErrorAnswer(new copy.RetryError('the CRM is down')), {
      status: 503,
      code: 'SEG_RETRY',
      message: 'the CRM is down',
    });
    const limited = new copy.EndpointError('SEG_RATE_LIMITED', undefined, { retryAfter: 7 });
    assert.equal(toErrorAnswer(limited).retryAfter, 7);
    // Its 500 says nothing of its cause, as ours does; instanceof keeps its meaning for partners.
    const internal = toErrorAnswer(new copy.EndpointError('SEG_INTERNAL', 'the password is hunter2'));
    assert.equal(internal.message, GENERIC_500);
    assert.ok(!(new copy.RetryError() instanceof RetryError));
    assert.ok(!(new RetryError() instanceof EventNotSupported));
  });

  test("another copy's mark is trusted no further than the catalogue: its code decides the status", () => {
    const mark = Symbol.for('segment-endpoint.EndpointError');
    const marked = (fields: object) => Object.assign(Object.create(null), { [mark]: true }, fields);
    const cases: Array<[object, number, string, string]> = [
      // No status at all: written as is, it threw in writeHead and took the process down.
      [marked({ message: 'no code' }), 500, 'SEG_INTERNAL', GENERIC_500],
      // A 200 would tell Segment the event was delivered.
      [marked({ status: 200, code: 'SEG_RETRY', message: 'later' }), 503, 'SEG_RETRY', 'later'],
      [marked({ status: 200, code: 'NOT_OURS' }), 500, 'SEG_INTERNAL', GENERIC_500],
      [
        marked({ status: 502, code: { a: 1 }, message: 'db at 10.0.0.7' }),
        502,
        'HTTP_502',
        ERRORS.SEG_RETRY.message,
      ],
      [
        marked({ code: 'SEG_INVALID_EVENT', message: 42 }),
        400,
        'SEG_INVALID_EVENT',
        ERRORS.SEG_INVALID_EVENT.message,
      ],
    ];
    for (const [err, status, code, message] of cases) {
      const answer = toErrorAnswer(err);
      assert.deepEqual([answer.status, answer.code, answer.message], [status, code, message]);
    }
  });

  test('a foreign error with a 4xx status keeps its message', () => {
    const err = Object.assign(new Error('API token expired'), { status: 401 });
    const answer = toErrorAnswer(err);
    assert.equal(answer.status, 401);
    assert.equal(answer.message, 'API token expired');
    assert.equal(answer.internal, undefined);
  });

  test('a foreign error with a 4xx statusCode keeps its message and its string code', () => {
    const answer = toErrorAnswer({ statusCode: 422, message: 'Missing email address', code: 'E_EMAIL' });
    assert.deepEqual(answer, { status: 422, code: 'E_EMAIL', message: 'Missing email address' });
  });

  test("a foreign 4xx's code is cut as its message is: an answer's size is ours to bound", () => {
    const answer = toErrorAnswer({ status: 400, code: 'C'.repeat(2_000_000), message: 'm' });
    assert.equal(answer.status, 400);
    assert.ok(answer.code.length <= 101, `a code of ${answer.code.length} characters`);
  });

  test('a foreign 4xx with no message still says something', () => {
    const answer = toErrorAnswer({ status: 409 });
    assert.equal(answer.status, 409);
    assert.notEqual(answer.message, '');
  });

  test('a foreign 5xx error does not expose its message, and carries internal', () => {
    for (const err of [
      Object.assign(new Error('ECONNREFUSED 10.0.0.7:5432 password=hunter2'), { status: 502 }),
      { statusCode: 500, message: 'at /srv/app/db.js:12 password=hunter2' },
    ]) {
      const answer = toErrorAnswer(err);
      assert.ok(answer.status >= 500);
      assert.doesNotMatch(answer.message, /hunter2|10\.0\.0\.7|\/srv/);
      assert.equal(answer.internal, err);
    }
  });

  test("a downstream's 4xx thrown as its HTTP client made it is a 500: Segment retries, the log says why", () => {
    // `await axios.post(...)` against a downstream answering 401 throws this: answered with its status, it
    // told Segment the customer's API key was bad, and the event was dropped for good.
    const downstream = (message: string, fields: object) => Object.assign(new Error(message), fields);
    const response = { status: 401, headers: { 'content-type': 'application/json' }, data: {} };
    for (const err of [
      // axios (and ky, got, superagent: the response it came with)
      downstream('Request failed with status code 401', {
        name: 'AxiosError',
        code: 'ERR_BAD_REQUEST',
        status: 401,
        isAxiosError: true,
        response,
        request: {},
      }),
      // Octokit's RequestError
      downstream('Not Found', { name: 'HttpError', status: 404, response, request: { method: 'POST' } }),
      // undici's ResponseStatusCodeError (throwOnError)
      downstream('Response status code 400: Bad Request', {
        code: 'UND_ERR_RESPONSE_STATUS_CODE',
        status: 400,
        statusCode: 400,
        headers: {},
        body: '',
      }),
      // Stripe's
      downstream('Your card was declined.', {
        type: 'StripeCardError',
        statusCode: 402,
        headers: {},
        raw: {},
      }),
      // A downstream's 501, which Segment would not retry either
      downstream('Not Implemented', { name: 'HttpError', status: 501, response }),
    ]) {
      const answer = toErrorAnswer(err);
      assert.deepEqual(
        [answer.status, answer.code, answer.message],
        [500, 'SEG_INTERNAL', GENERIC_500],
        err.name,
      );
      assert.equal(answer.internal, err);
    }
  });

  test("a downstream's 429 and 5xx keep their status: Segment retries them already", () => {
    const response = { status: 429, headers: {} };
    const limited = Object.assign(new Error('Too Many Requests'), { status: 429, response, retryAfter: 30 });
    assert.deepEqual(toErrorAnswer(limited), {
      status: 429,
      code: 'HTTP_429',
      message: 'Too Many Requests',
      retryAfter: 30,
    });
    const down = Object.assign(new Error('Bad Gateway'), { statusCode: 502, response });
    assert.deepEqual([toErrorAnswer(down).status, toErrorAnswer(down).code], [502, 'HTTP_502']);
  });

  test("a partner's own error with a request or headers beside its status is still its answer", () => {
    const kept = Object.assign(new Error('Missing email address'), { status: 400, request: { id: 'r1' } });
    assert.equal(toErrorAnswer(kept).status, 400);
    const limited = Object.assign(new Error('Not on this plan'), {
      status: 403,
      headers: { 'x-plan': 'free' },
    });
    assert.equal(toErrorAnswer(limited).status, 403);
  });

  test('an error made to be an answer is one, even with headers of its own (http-errors)', () => {
    const err = Object.assign(new Error('Token expired'), {
      status: 401,
      statusCode: 401,
      expose: true,
      headers: { 'www-authenticate': 'Bearer' },
    });
    assert.deepEqual(toErrorAnswer(err), { status: 401, code: 'HTTP_401', message: 'Token expired' });
  });

  test('status range: 400 and 599 are honoured, 399 and 600 are a generic 500', () => {
    assert.equal(toErrorAnswer({ status: 400, message: 'x' }).status, 400);
    assert.equal(toErrorAnswer({ status: 599 }).status, 599);
    for (const status of [399, 600, 404.5, Number.NaN]) {
      const answer = toErrorAnswer({ status, message: 'leak' });
      assert.equal(answer.status, 500, String(status));
      assert.equal(answer.code, 'SEG_INTERNAL');
      assert.equal(answer.message, GENERIC_500);
    }
  });

  test('a string status is not a status', () => {
    const answer = toErrorAnswer({ status: '404', message: 'leak' });
    assert.equal(answer.status, 500);
    assert.equal(answer.message, GENERIC_500);
  });

  test('a plain Error, a thrown string and null are a generic 500 with internal set', () => {
    for (const thrown of [new Error('ENOENT: /etc/secret'), 'something broke', null, undefined]) {
      const answer = toErrorAnswer(thrown);
      assert.equal(answer.status, 500);
      assert.equal(answer.code, 'SEG_INTERNAL');
      assert.equal(answer.message, GENERIC_500);
      // Nothing thrown (null, undefined) is logged as that, not left out of the log.
      if (thrown === null || thrown === undefined) {
        assert.match(String(answer.internal), new RegExp(`threw or rejected with ${thrown}`));
      } else {
        assert.equal(answer.internal, thrown);
      }
    }
  });
});

describe('quoted', () => {
  test('a value past its length is cut, never inside a surrogate pair', () => {
    assert.equal(quoted('abcdef', 4), '"abcd…"');
    assert.equal(quoted('abc😀def', 4), '"abc…"', 'the emoji is two UTF-16 units: not half of it');
    assert.equal(quoted('ab😀def', 4), '"ab😀…"');
    assert.equal(quoted('abc', 4), '"abc"');
    const long = toErrorAnswer(new ValidationError(`${'a'.repeat(999)}😀 and more`));
    assert.equal(long.message, `${'a'.repeat(999)}…`, "a handler's message capped at 1,000 the same way");
  });
});
