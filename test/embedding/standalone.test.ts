// The contract cases through the standalone server (createServer, real TLS): the baseline every other
// host's answers are compared with.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mismatches, standaloneAnswers } from './cases.ts';

test('the standalone server answers every contract case as the contract says', async () => {
  const seen: string[] = [];
  assert.deepEqual(mismatches(await standaloneAnswers(seen)), []);
  assert.deepEqual(seen.filter((id) => id === 'c-1').length, 1, 'the duplicate was not handled again');
});
