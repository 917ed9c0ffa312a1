// The contract cases through Koa 3 over real TLS, with the README's snippet: a prefix check, the
// prefix cut from the URL and named as express names a mount (Koa's core has no mount), `ctx.respond =
// false` and the (req, res) handler.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import Koa from 'koa';
import { createHandler, createServer, type EndpointHandler, silentLogger } from '../../src/index.ts';
import { testCert } from '../helpers-cert.ts';
import { CASE_KEY, caseOptions, fingerprint, mismatches, runCases, sendTo, served } from './cases.ts';

/** The README's Koa snippet, word for word but for the names. */
function koaApp(segment: EndpointHandler): Koa {
  const app = new Koa();
  app.use((ctx, next) => {
    if (ctx.path !== '/segment' && !ctx.path.startsWith('/segment/')) return next();
    // Koa has no mount: the handler routes on what follows, of the path (ctx.url may be absolute-form).
    const rest = `${ctx.path.slice('/segment'.length)}${ctx.search}`;
    ctx.req.url = rest.startsWith('/') ? rest : `/${rest}`;
    Object.assign(ctx.req, { baseUrl: '/segment' }); // named in its 404s, as express's mount is
    ctx.respond = false; // the handler writes the answer itself
    segment(ctx.req, ctx.res);
  });
  app.use((ctx) => {
    ctx.body = 'the partner app';
  });
  return app;
}

test('Koa: the contract cases answer as the standalone server does, byte for byte', async () => {
  const seen: string[] = [];
  let answers = new Map();
  await served(
    koaApp(createHandler({ ...caseOptions(seen), log: silentLogger })).callback(),
    async (origin) => {
      answers = await runCases(sendTo(origin, '/segment'));
    },
  );
  assert.deepEqual(mismatches(answers), []);
  assert.equal(seen.filter((id) => id === 'c-1').length, 1, 'the duplicate was not handled again');

  const standalone = createServer({
    ...caseOptions(),
    tls: testCert(),
    host: '127.0.0.1',
    port: 0,
    log: silentLogger,
  });
  const url = await standalone.listen();
  try {
    const baseline = await runCases(sendTo(new URL(url).origin));
    assert.deepEqual([...answers], [...baseline]);
    assert.equal(fingerprint(answers), fingerprint(baseline));
  } finally {
    await standalone.close();
  }
});

test('Koa: the rest of the app is untouched; its 404 names the mount; a query string and drain() reach the handler', async () => {
  const segment = createHandler({ ...caseOptions(), log: silentLogger });
  await served(koaApp(segment).callback(), async (origin) => {
    const send = sendTo(origin);
    const get = (path: string) => ({ name: path, path, method: 'GET', headers: {}, status: 0 });
    assert.deepEqual(await send(get('/')), { status: 200, body: 'the partner app' });
    assert.deepEqual(await send(get('/segmentation')), { status: 200, body: 'the partner app' });
    assert.deepEqual(await send(get('/segment/elsewhere')), {
      status: 404,
      body: '{"message":"Not found: send events to /segment","code":"SEG_NOT_FOUND"}',
    });
    assert.deepEqual(await send(get('/segment?probe=1')), {
      status: 405,
      body: '{"message":"Method not allowed: send events with POST","code":"SEG_METHOD_NOT_ALLOWED"}',
    });
    segment.drain();
    const event = await send({
      name: 'while draining',
      path: '/segment/v1/track',
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Basic ${btoa(`${CASE_KEY}:`)}` },
      body: '{"type":"track","event":"e","userId":"u"}',
      status: 0,
    });
    assert.equal(event.status, 503);
    assert.equal(JSON.parse(event.body).code, 'SEG_DRAINING');
    assert.deepEqual(await send(get('/segment/health')), { status: 503, body: '{"status":"draining"}' });
  });
});
