// The contract cases through the standalone server (createServer, real TLS): the baseline every other
// host's answers are compared with.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createServer, silentLogger } from '../../src/index.ts';
import { testCert } from '../helpers.ts';
import { caseOptions, mismatches, runCases, sendTo } from './cases.ts';

test('the standalone server answers every contract case as the contract says', async () => {
  const seen: string[] = [];
  const { cert, key } = testCert();
  const endpoint = createServer({
    ...caseOptions(seen),
    tls: { cert, key },
    host: '127.0.0.1',
    port: 0,
    log: silentLogger,
  });
  const url = await endpoint.listen();
  try {
    const answers = await runCases(sendTo(new URL(url).origin));
    assert.deepEqual(mismatches(answers), []);
    assert.deepEqual(seen.filter((id) => id === 'c-1').length, 1, 'the duplicate was not handled again');
  } finally {
    await endpoint.close();
  }
});
