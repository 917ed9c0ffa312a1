import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import {
  type CheckedSettings,
  createFetchHandler,
  createHandler,
  createServer,
  type HandlerOptions,
  type Handlers,
  type SettingsSchema,
  silentLogger,
} from '../src/index.ts';
import { startCli } from './cli-harness.ts';
import { API_KEY, encodeSettings, segmentHeaders, tempDirs, trackEvent } from './helpers.ts';
import { inject } from './helpers-inject.ts';
import { CLI, httpFlags, spawnClean } from './helpers-spawn.ts';

// `settingsSchema`: the destination's settings checked once per customer's header, the handlers given
// them typed; settings that do not match answered 400, saying where and what was expected, never the
// value the customer gave (it may be their credential for the partner's service).

const DestinationSettings = Type.Object({
  region: Type.Union([Type.Literal('us'), Type.Literal('eu')]),
  apiSecret: Type.String({ minLength: 8 }),
  batch: Type.Optional(Type.Integer({ minimum: 1 })),
});
type DestinationSettings = Static<typeof DestinationSettings>;

const withSettings = (settings: unknown) => ({
  ...segmentHeaders(),
  'x-segment-settings': encodeSettings(settings),
});

/** The compiled schema, counting the settings it is asked to check. */
function counted() {
  const compiled = TypeCompiler.Compile(DestinationSettings);
  const checks: unknown[] = [];
  const schema: SettingsSchema<DestinationSettings> = {
    Check: (value): value is DestinationSettings => {
      checks.push(value);
      return compiled.Check(value);
    },
    Errors: (value) => compiled.Errors(value),
  };
  return { schema, checks };
}

describe('settingsSchema', () => {
  test('settings that match reach the handler typed; each header is checked once', async () => {
    const seen: Array<'us' | 'eu'> = [];
    const { schema, checks } = counted();
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      settingsSchema: schema,
      handlers: {
        track: (_event, ctx) => {
          // Typed by the schema: a region is 'us' or 'eu', the secret a string.
          const region: 'us' | 'eu' = ctx.settings.region;
          const secret: string = ctx.settings.apiSecret;
          // @ts-expect-error typed, not `any`: a region is never a number
          const wrong: number = ctx.settings.region;
          assert.notEqual(wrong, 0);
          assert.equal(secret.length >= 8, true);
          seen.push(region);
        },
      },
    });
    const good = withSettings({ region: 'eu', apiSecret: 's3cr3t-value' });
    for (let n = 0; n < 3; n++) {
      const res = await inject(handler, { headers: good, body: trackEvent({ messageId: `m${n}` }) });
      assert.equal(res.status, 200, res.body);
    }
    assert.deepEqual(seen, ['eu', 'eu', 'eu']);
    assert.equal(checks.length, 1, 'the same header is judged once');
  });

  test('handlers that type their settings need the schema that checks them', () => {
    // Handlers<S> without a settingsSchema compiled, and each customer's settings reached them unchecked,
    // typed as S: `ctx.settings.region` was 'mars', or undefined without the header.
    const regional: Handlers<DestinationSettings> = { track: (_event, ctx) => void ctx.settings.region };
    const base = { apiKeys: [API_KEY], log: silentLogger, handlers: regional };
    // @ts-expect-error settings typed by the handlers, and nothing to check them
    assert.ok(createHandler(base));
    // @ts-expect-error the same through createServer
    assert.ok(createServer({ ...base, http: true }));
    // @ts-expect-error and createFetchHandler
    assert.ok(createFetchHandler(base));
    // Every field optional: typed all the same, and all the same unchecked.
    const optional: Handlers<Partial<DestinationSettings>> = {
      track: (_event, ctx) => void ctx.settings.region,
    };
    // @ts-expect-error settings whose fields are all optional, and nothing to check them
    assert.ok(createHandler({ ...base, handlers: optional }));
    assert.ok(createHandler({ ...base, settingsSchema: counted().schema }));
    // Options built apart, as the README shows them.
    const options = {
      ...base,
      settingsSchema: counted().schema,
    } satisfies HandlerOptions<DestinationSettings> & CheckedSettings<DestinationSettings>;
    assert.ok(createHandler(options));
    // Handlers that take any settings need none.
    const untyped: Handlers = { track: (_event, ctx) => void ctx.settings.region };
    assert.ok(createHandler({ ...base, handlers: untyped }));
  });

  test('settings that do not match: 400 SEG_SETTINGS_INVALID naming where and what, never the value', async () => {
    const { schema, checks } = counted();
    const handled: unknown[] = [];
    const handler = createHandler({
      apiKeys: [API_KEY],
      log: silentLogger,
      settingsSchema: schema,
      handlers: { track: (event) => void handled.push(event) },
    });
    const cases: Array<[unknown, RegExp]> = [
      [{ region: 'mars', apiSecret: 'TopSecretValue1' }, /: \/region: /],
      [{ region: 'us', apiSecret: 'short' }, /: \/apiSecret: .*8/],
      [{ region: 'us' }, /: \/apiSecret: /],
      [{ region: 'us', apiSecret: 'TopSecretValue1', batch: 0.5 }, /: \/batch: /],
    ];
    for (const [settings, where] of cases) {
      for (let n = 0; n < 2; n++) {
        const res = await inject(handler, { headers: withSettings(settings), body: trackEvent() });
        assert.equal(res.status, 400, res.body);
        const { code, message } = JSON.parse(res.body);
        assert.equal(code, 'SEG_SETTINGS_INVALID');
        assert.match(message, /^X-Segment-Settings: the settings do not match this destination's: /);
        assert.match(message, where);
        assert.doesNotMatch(message, /mars|TopSecretValue1|short|0\.5/, 'the value given is never said');
      }
    }
    assert.equal(checks.length, cases.length, 'a refused header is judged once too');
    // No header is `{}`, judged as any other: here it lacks what the destination requires.
    const bare = await inject(handler, { body: trackEvent() });
    assert.equal(bare.status, 400);
    assert.match(JSON.parse(bare.body).message, /: \/region: /);
    assert.deepEqual(handled, []);
  });

  test("an adapter's errors without a place or a message: the 400 says what it can, never 'undefined'", async () => {
    for (const [yielded, said] of [
      [[{}], "X-Segment-Settings: the settings do not match this destination's"],
      [
        [{ message: 'Expected a region' }],
        "X-Segment-Settings: the settings do not match this destination's: Expected a region",
      ],
      [[], "X-Segment-Settings: the settings do not match this destination's"],
    ] as const) {
      const handler = createHandler({
        apiKeys: [API_KEY],
        log: silentLogger,
        settingsSchema: {
          Check: (_value: unknown): _value is object => false,
          Errors: () => yielded as never,
        },
        handlers: { track: () => {} },
      });
      const res = await inject(handler, { headers: withSettings({ region: 'us' }), body: trackEvent() });
      assert.equal(res.status, 400);
      assert.equal(JSON.parse(res.body).message, said);
    }
  });

  test('not a compiled schema: refused at once, naming the option', () => {
    const handlers: Handlers = { track: () => {} };
    for (const settingsSchema of [DestinationSettings, {}, { Check: () => true }, 'schema', null]) {
      assert.throws(
        () => createHandler({ apiKeys: [API_KEY], handlers, settingsSchema: settingsSchema as never }),
        {
          name: 'TypeError',
          message: /^options\.settingsSchema must be a compiled schema with Check and Errors/,
        },
      );
    }
  });

  test('a schema whose Check throws: 500 without its words, and the endpoint goes on', async () => {
    const logged: string[] = [];
    const log = { ...silentLogger, error: (_fields: unknown, msg: string) => void logged.push(msg) };
    let broken = true;
    const handler = createHandler({
      apiKeys: [API_KEY],
      log,
      settingsSchema: {
        Check: (value: unknown): value is Record<string, unknown> => {
          if (broken) throw new Error('schema internals: /etc/partner/secret-path');
          return true;
        },
        Errors: () => [],
      },
      handlers: { track: () => {} },
    });
    const res = await inject(handler, { headers: withSettings({ region: 'us' }), body: trackEvent() });
    assert.equal(res.status, 500);
    assert.doesNotMatch(res.body, /internals|secret-path/);
    // Logged as what it is: the request failed before any handler ran, not as a handler's failure.
    assert.deepEqual(logged, ['request failed']);
    broken = false;
    const again = await inject(handler, { headers: withSettings({ region: 'eu' }), body: trackEvent() });
    assert.equal(again.status, 200);
  });

  test('a Check that answers anything but true or false (an async validator): 500, logged, never admitted', async () => {
    // A promise is truthy: taken as a match, it would hand every customer's settings on unchecked; one
    // that rejects (as ajv's async validators do for invalid data) would end the process, unhandled.
    const answers = [
      () => Promise.resolve(false),
      () => Promise.reject(new Error('the settings are invalid')),
      () => undefined,
      () => 1,
    ];
    for (const answer of answers) {
      const logged: unknown[] = [];
      const log = { ...silentLogger, error: (fields: unknown) => void logged.push(fields) };
      const handled: unknown[] = [];
      const handler = createHandler({
        apiKeys: [API_KEY],
        log,
        settingsSchema: { Check: answer, Errors: () => [] } as unknown as SettingsSchema<unknown>,
        handlers: { track: (event) => void handled.push(event) },
      });
      for (let n = 0; n < 2; n++) {
        const headers = withSettings({ region: 'mars' });
        const res = await inject(handler, { headers, body: trackEvent({ messageId: `m${n}` }) });
        assert.equal(res.status, 500, res.body);
        assert.equal(JSON.parse(res.body).code, 'SEG_INTERNAL');
      }
      assert.equal(logged.length, 2, 'the partner hears of it each time');
      assert.deepEqual(handled, []);
    }
    // A rejection left unhandled surfaces on this turn, within the test.
    await new Promise((resolve) => setImmediate(resolve));
  });
});

describe('settingsSchema from a --handlers module', () => {
  const tempDir = tempDirs('settings');

  test('its settingsSchema export checks each customer settings: 400 when they do not match', async () => {
    const module = join(tempDir(), 'handlers.mjs');
    writeFileSync(
      module,
      [
        `import { Type } from ${JSON.stringify(import.meta.resolve('@sinclair/typebox'))};`,
        `import { TypeCompiler } from ${JSON.stringify(import.meta.resolve('@sinclair/typebox/compiler'))};`,
        "export const settingsSchema = TypeCompiler.Compile(Type.Object({ region: Type.Literal('eu') }));",
        'export default { track: () => {} };',
      ].join('\n'),
    );
    const run = await startCli([...httpFlags(API_KEY), '--handlers', module]);
    try {
      const post = (settings: unknown) =>
        fetch(run.url, {
          method: 'POST',
          headers: withSettings(settings),
          body: JSON.stringify(trackEvent()),
        });
      assert.equal((await post({ region: 'eu' })).status, 200);
      const refused = await post({ region: 'us' });
      assert.equal(refused.status, 400);
      assert.match((await refused.json()).message, /\/region/);
    } finally {
      run.child.kill();
      await run.exit;
    }
  });

  test('a settingsSchema export that is not a compiled schema: refused at start, naming the module', async () => {
    const module = join(tempDir(), 'raw-schema.mjs');
    writeFileSync(
      module,
      "export const settingsSchema = { type: 'object' };\nexport default { track: () => {} };\n",
    );
    const run = spawnClean(process.execPath, [...CLI, ...httpFlags('k1'), '--handlers', module]);
    const bound = setTimeout(() => run.child.kill('SIGKILL'), 10_000);
    assert.equal(await run.exit, 1, run.stderr());
    clearTimeout(bound);
    assert.match(
      run.stderr(),
      /^segment-endpoint: --handlers .*raw-schema\.mjs: its settingsSchema export must be a compiled schema with Check and Errors/,
    );
  });
});
