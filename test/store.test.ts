import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { type Context, NdjsonStore, type StoredRecord, storeHandlers } from '../src/index.ts';
import { silentLogger } from '../src/log.ts';
import { tempDirs } from './helpers.ts';

const tempDir = tempDirs('store');

const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));

test('append resolves once the line is in the file of its UTC day', async () => {
  const store = await NdjsonStore.open(join(tempDir(), 'nested', 'data'));
  const at = new Date('2026-11-26T23:59:59.999Z');
  await store.append({ n: 1 }, at);
  const file = store.fileFor(at);
  assert.match(file, /events-2026-11-26\.ndjson$/);
  assert.deepEqual(lines(file), [{ n: 1 }]);
  await store.append({ n: 2 }, new Date('2026-11-27T00:00:00.000Z'));
  // (Today's file is there too: opening the store opens it, to refuse a directory it cannot write to.)
  const names = readdirSync(store.dir);
  for (const name of ['events-2026-11-26.ndjson', 'events-2026-11-27.ndjson'])
    assert.ok(names.includes(name));
  await store.close();
});

test("the store's files and the directories it makes are its user's alone: events and settings may hold secrets", async () => {
  // Stored lines hold customers' events (emails, names) and their settings as sent, which often carry
  // their credentials for the partner's service: under the default umask they were readable by every
  // user of the machine (0644, directories 0755).
  const previous = process.umask(0o022);
  try {
    const parent = tempDir();
    const store = await NdjsonStore.open(join(parent, 'made', 'data'));
    const at = new Date();
    await store.append({ settings: { crmToken: 'secret' } }, at);
    await store.close();
    const mode = (path: string) => statSync(path).mode & 0o777;
    assert.equal(mode(store.fileFor(at)).toString(8), '600');
    assert.equal(mode(join(parent, 'made')).toString(8), '700');
    assert.equal(mode(store.dir).toString(8), '700');
  } finally {
    process.umask(previous);
  }
});

test('group commit: concurrent appends share write+sync rounds and keep their order', async () => {
  const store = await NdjsonStore.open(tempDir());
  const at = new Date();
  await Promise.all(Array.from({ length: 500 }, (_, n) => store.append({ n }, at)));
  assert.deepEqual(
    lines(store.fileFor(at)).map((r) => r.n),
    Array.from({ length: 500 }, (_, n) => n),
  );
  assert.equal(store.stats.records, 500);
  assert.ok(store.stats.commits < 50, `${store.stats.commits} commits for 500 records`);
  await store.close();
});

test('a value holding newlines stays one line', async () => {
  const store = await NdjsonStore.open(tempDir());
  const at = new Date();
  await store.append({ text: 'a\nb\r\nc\u2028d' }, at);
  await store.append({ text: 'next' }, at);
  const raw = readFileSync(store.fileFor(at), 'utf8');
  assert.equal(raw.split('\n').length, 3);
  assert.deepEqual(lines(store.fileFor(at)), [{ text: 'a\nb\r\nc\u2028d' }, { text: 'next' }]);
  await store.close();
});

test('after close, appends are refused and nothing is written', async () => {
  const store = await NdjsonStore.open(tempDir());
  const at = new Date();
  await store.append({ n: 1 }, at);
  await store.close();
  await assert.rejects(store.append({ n: 2 }, at), /closed/);
  assert.equal(lines(store.fileFor(at)).length, 1);
});

test('a failed write rejects its events, and the store recovers on a fresh line', async () => {
  const dir = tempDir();
  const store = await NdjsonStore.open(dir);
  const at = new Date('2026-01-05T12:00:00.000Z'); // not today: today's file is open already
  // A directory where the day's file should be makes the open fail.
  const blocked = store.fileFor(at);
  const { mkdirSync } = await import('node:fs');
  mkdirSync(blocked);
  await assert.rejects(store.append({ n: 1 }, at));
  rmSync(blocked, { recursive: true });
  await store.append({ n: 2 }, at);
  assert.deepEqual(lines(blocked), [{ n: 2 }]);
  await store.close();
});

test('storeHandlers keep the event as received, the settings and a fingerprint of the key, never the key', async () => {
  const store = await NdjsonStore.open(tempDir());
  const handlers = storeHandlers(store);
  const receivedAt = new Date('2026-11-26T12:00:00.000Z');
  const original = { Type: 'Track', event: 'Signed Up', user_id: 'u1' };
  const ctx = {
    apiKey: 'secret-key-123',
    settings: { region: 'eu' },
    headers: {},
    signal: new AbortController().signal,
    log: silentLogger,
    receivedAt,
    original,
    raw: undefined,
  } satisfies Context;
  assert.deepEqual(Object.keys(handlers).sort(), [
    'alias',
    'delete',
    'group',
    'identify',
    'page',
    'screen',
    'track',
  ]);
  await handlers.track?.({ type: 'track', event: 'Signed Up', userId: 'u1' }, ctx);
  const file = store.fileFor(receivedAt);
  const [record] = lines(file) as StoredRecord[];
  assert.deepEqual(record, {
    receivedAt: receivedAt.toISOString(),
    source: record?.source,
    settings: { region: 'eu' },
    event: original,
  });
  assert.match(record?.source ?? '', /^[0-9a-f]{12}$/);
  assert.doesNotMatch(readFileSync(file, 'utf8'), /secret-key-123/);
  await store.close();
});

test("storeHandlers leave an event's logger unmade while the store writes", async () => {
  // An event's logger is made on first use (a fingerprint of its key, a child logger): a store that
  // writes has nothing to say, and made it for every event it kept.
  const store = await NdjsonStore.open(tempDir());
  let made = 0;
  const ctx = {
    apiKey: 'k',
    settings: {},
    headers: {},
    signal: new AbortController().signal,
    get log() {
      made++;
      return silentLogger;
    },
    receivedAt: new Date('2026-11-26T12:00:00.000Z'),
    original: { type: 'track', event: 'E', userId: 'u1' },
    raw: undefined,
  } satisfies Context;
  const handlers = storeHandlers(store);
  for (let i = 0; i < 3; i++) await handlers.track?.({ type: 'track', event: 'E', userId: 'u1' }, ctx);
  assert.equal(lines(store.fileFor(ctx.receivedAt)).length, 3);
  assert.equal(made, 0);
  await store.close();
});

test('storeHandlers store the event as parsed, one line, whatever the spacing of the body text', async () => {
  const store = await NdjsonStore.open(tempDir());
  const receivedAt = new Date('2026-11-26T12:00:00.000Z');
  const base = {
    apiKey: 'k',
    settings: { nested: { a: [1, 2] } },
    headers: {},
    signal: new AbortController().signal,
    log: silentLogger,
    receivedAt,
  };
  const spaced = '  { "type" : "track", "event": "A \\u00e9", "userId": "u1" }  ';
  const pretty = '{\n  "type": "track",\n  "event": "B",\n  "userId": "u1"\n}';
  await storeHandlers(store).track?.(
    { type: 'track', event: 'A', userId: 'u1' },
    {
      ...base,
      original: JSON.parse(spaced),
      raw: spaced,
    },
  );
  await storeHandlers(store).track?.(
    { type: 'track', event: 'B', userId: 'u1' },
    {
      ...base,
      original: JSON.parse(pretty),
      raw: pretty,
    },
  );
  const text = readFileSync(store.fileFor(receivedAt), 'utf8');
  assert.equal(text.split('\n').length, 3, 'two lines, each ending in a newline');
  assert.ok(text.includes('"event":{"type":"track","event":"A é","userId":"u1"}}'), text);
  const records = lines(store.fileFor(receivedAt)) as StoredRecord[];
  assert.deepEqual(
    records.map((r) => r.event),
    [JSON.parse(spaced), JSON.parse(pretty)],
  );
  assert.deepEqual(records[0]?.settings, { nested: { a: [1, 2] } });
  await store.close();
});

test('entries named like store files that are not: a dangling link is passed over, a directory named', async () => {
  // What the reader already passes over must not stop the endpoint, or be blamed on --out.
  const dir = tempDir();
  symlinkSync(join(dir, 'gone'), join(dir, 'events-2020-01-01.ndjson'));
  const store = await NdjsonStore.open(dir);
  await store.append({ n: 1 });
  await store.close();
  mkdirSync(join(dir, 'events-2020-01-02.ndjson'));
  const { openSink } = await import('../src/sinks/sink.ts');
  await assert.rejects(openSink({ out: dir, postgres: undefined, worker: undefined }, silentLogger), {
    message: `--out ${dir}: cannot use ${join(dir, 'events-2020-01-02.ndjson')} (EISDIR)`,
  });
});

test('a store file that is a symbolic link is never written through, nor cut by repair: another user may have planted it', async () => {
  // In an --out others can write to, a link named as today's file sent events and their settings to a
  // file of the other user's; one named as a past day's, to a file whose last line repair would cut.
  const dir = tempDir();
  const outside = join(tempDir(), 'elsewhere');
  writeFileSync(outside, 'not the store, no newline at its end');
  const before = readFileSync(outside, 'utf8');
  const today = new Date();
  const store = await NdjsonStore.open(dir);
  const file = store.fileFor(today);
  await store.append({ n: 1 }, today);
  // Today's file replaced by a link while the store runs.
  rmSync(file);
  symlinkSync(outside, file);
  await assert.rejects(store.append({ n: 2 }, today), { code: 'ELOOP' });
  await store.close();
  assert.equal(readFileSync(outside, 'utf8'), before);
  // At start: a past day's link is passed over, today's refused.
  symlinkSync(outside, join(dir, 'events-2020-01-01.ndjson'));
  await assert.rejects(NdjsonStore.open(dir), { code: 'ELOOP' });
  rmSync(file);
  const again = await NdjsonStore.open(dir);
  await again.append({ n: 3 }, today);
  await again.close();
  assert.equal(readFileSync(outside, 'utf8'), before);
  assert.deepEqual(lines(file), [{ n: 3 }]);
});

test('a link where a torn line would be set aside refuses the start: the line is neither followed there nor left for the next event to join', async () => {
  const dir = tempDir();
  const file = join(dir, 'events-2026-11-30.ndjson');
  writeFileSync(file, '{"n":1}\n{"n":2,"partial');
  const outside = join(tempDir(), 'elsewhere');
  writeFileSync(outside, '');
  symlinkSync(outside, `${file}.torn`);
  await assert.rejects(NdjsonStore.open(dir), { code: 'ELOOP' });
  assert.equal(readFileSync(file, 'utf8'), '{"n":1}\n{"n":2,"partial');
  assert.equal(readFileSync(outside, 'utf8'), '');
});

test('files another user owns are not written: neither the day file nor where a torn line goes', async () => {
  // Said of the file's owner as the descriptor opened shows it (fstat), whoever runs the test.
  const { nodeIo } = await import('../src/sinks/file-io.ts');
  const foreign = (suffix: string) => ({
    ...nodeIo,
    fstat: async (fd: number) => {
      const stat = await nodeIo.fstat(fd);
      const path = readlinkSync(`/proc/self/fd/${fd}`);
      return path.endsWith(suffix) ? { ...stat, uid: (process.geteuid?.() ?? 0) + 1 } : stat;
    },
  });
  const dir = tempDir();
  await assert.rejects(NdjsonStore.open(dir, { io: foreign('.ndjson') }), { code: 'SEG_STORE_FOREIGN_FILE' });
  const torn = tempDir();
  const file = join(torn, 'events-2026-11-30.ndjson');
  writeFileSync(file, '{"n":1}\n{"n":2,"partial');
  writeFileSync(`${file}.torn`, '');
  await assert.rejects(NdjsonStore.open(torn, { io: foreign('.torn') }), { code: 'SEG_STORE_FOREIGN_FILE' });
  assert.equal(readFileSync(`${file}.torn`, 'utf8'), '');
  assert.equal(readFileSync(file, 'utf8'), '{"n":1}\n{"n":2,"partial');
});

test("a store file another user owns is not appended to: the events would be that user's to read", {
  skip: process.getuid?.() !== 0 && 'needs root to give a file to another user',
}, async () => {
  const dir = tempDir();
  const store = await NdjsonStore.open(dir);
  const today = new Date();
  const file = store.fileFor(today);
  await store.close();
  rmSync(file);
  writeFileSync(file, '', { mode: 0o666 });
  chownSync(file, 65534, 65534);
  await assert.rejects(NdjsonStore.open(dir), /owned by another user \(uid 65534\)/);
  assert.equal(readFileSync(file, 'utf8'), '');
});

test('a store directory made again while the endpoint runs is said once: removed, or its volume unmounted', async () => {
  // A volume unmounted under the running endpoint (umount -l) left it writing to a directory made again on
  // the disk beneath, where the events are hidden once the volume is back, and nothing said so.
  const dir = join(tempDir(), 'out');
  const warned: Array<{ fields: object; msg: string }> = [];
  const log = {
    ...silentLogger,
    warn: (fields: object, msg?: string) => warned.push({ fields, msg: msg ?? '' }),
  };
  const { openSink } = await import('../src/sinks/sink.ts');
  const sink = await openSink({ out: dir, postgres: undefined, worker: undefined }, log);
  const track = sink.handlers.track as NonNullable<typeof sink.handlers.track>;
  const ctx = (n: number) =>
    ({ apiKey: 'key', settings: {}, receivedAt: new Date(), original: { type: 'track', n }, log }) as never;
  await track({ type: 'track', event: 'Seen', userId: 'u' }, ctx(1));
  assert.deepEqual(warned, [], 'made at start: nothing to say');
  rmSync(dir, { recursive: true });
  await track({ type: 'track', event: 'Seen', userId: 'u' }, ctx(2));
  await track({ type: 'track', event: 'Seen', userId: 'u' }, ctx(3));
  await sink.close();
  assert.deepEqual(warned, [
    {
      fields: { dir, made: dir },
      msg: 'the store directory was gone and has been made again: events from now on are stored in the new one (was it removed, or its volume unmounted?)',
    },
  ]);
  assert.deepEqual(
    readdirSync(dir)
      .filter((name) => name.startsWith('events-'))
      .flatMap((name) => lines(join(dir, name)).map((line) => (line as { event: { n: number } }).event.n)),
    [2, 3],
  );
});

test('an --out every user of the host may write to is said at start', async () => {
  const dir = tempDir();
  chmodSync(dir, 0o777);
  const warned: string[] = [];
  const log = { ...silentLogger, warn: (_: object, msg?: string) => warned.push(msg ?? '') };
  const { openSink } = await import('../src/sinks/sink.ts');
  const sink = await openSink({ out: dir, postgres: undefined, worker: undefined }, log);
  await sink.close?.();
  assert.deepEqual(warned, [
    `--out ${dir} is writable by every user of this host (mode 0777): they could plant files where events are stored; chmod 700 it`,
  ]);
});
