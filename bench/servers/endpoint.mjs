// segment-endpoint as shipped (compiled dist/, every protection on): with no-op handlers, or with the
// default durable store (`durable`), where every 200 waits for write + fdatasync.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, NdjsonStore, silentLogger, storeHandlers } from '../../dist/index.js';
import { API_KEY, port, ready, tls } from './common.mjs';

const durable = process.argv[2] === 'durable';
const noop = () => {};
const handlers = durable
  ? storeHandlers(
      await NdjsonStore.open(process.env.BENCH_OUT ?? mkdtempSync(join(tmpdir(), 'bench-store-'))),
    )
  : { identify: noop, track: noop, page: noop, screen: noop, group: noop, alias: noop, delete: noop };

const endpoint = createServer({
  tls,
  host: '127.0.0.1',
  port,
  apiKeys: [API_KEY],
  handlers,
  log: silentLogger,
});
await endpoint.listen();
ready(endpoint.server);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => endpoint.close().then(() => process.exit(0)));
}
