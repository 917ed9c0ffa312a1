import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ApiKeySpec } from '../src/auth.ts';
import { jsonLogger } from '../src/log.ts';
import type { EndpointServer } from '../src/server.ts';
import { reloader } from '../src/start.ts';

// What a SIGHUP loads in a process that serves (start.ts reloader): all it can in the single process, and
// in a worker of --workers only the files its primary sent, since those are what the primary loaded.

function serving() {
  const lines: string[] = [];
  const loaded: string[][] = [];
  const endpoint = {
    reloadTls: () => lines.push('tls loaded'),
    handler: { setApiKeys: (keys: ApiKeySpec[]) => loaded.push(keys.map((spec) => spec.key)) },
  } as unknown as EndpointServer;
  const log = jsonLogger('info', (line) => lines.push(JSON.parse(line).msg));
  return { lines, loaded, endpoint, log };
}

test('a worker over plain HTTP sent the keys file loads the keys and says nothing of a certificate', () => {
  // Each worker said "SIGHUP: no certificate to reload (plain HTTP)" at every keys reload: the primary's
  // message named the keys file alone, and a certificate that is not there was taken as sent.
  const { lines, loaded, endpoint, log } = serving();
  const keysFile = { path: '/keys', keys: () => [{ key: 'second-key' }] };
  const reload = reloader({ tlsFiles: undefined, keysFile }, endpoint, log, () => Buffer.from(''));
  reload(['/keys']);
  assert.deepEqual(loaded, [['second-key']]);
  assert.deepEqual(lines, ['API keys reloaded']);
});

test('the single process over plain HTTP loads the keys; "no certificate" only where nothing is reloaded', () => {
  const { lines, loaded, endpoint, log } = serving();
  const keysFile = { path: '/keys', keys: () => [{ key: 'second-key' }] };
  reloader({ tlsFiles: undefined, keysFile }, endpoint, log, () => Buffer.from(''))();
  assert.deepEqual(loaded, [['second-key']]);
  assert.deepEqual(lines, ['API keys reloaded']);
  reloader({ tlsFiles: undefined, keysFile: undefined }, endpoint, log)();
  assert.deepEqual(lines, ['API keys reloaded', 'SIGHUP: no certificate to reload (plain HTTP)']);
});
