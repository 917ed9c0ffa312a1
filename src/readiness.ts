import type { Logger } from './log.ts';
import { isPromise } from './promise.ts';

/**
 * The `ready` option as the health path asks it, guarded as every function a partner gives is: one that
 * throws, or answers neither true nor false (an async function's Promise, which the health path does not
 * wait for), is "unavailable", so that a load balancer stops sending rather than trusting it. The fault is
 * logged when it first appears or changes, not at every check.
 */
export function readiness(ready: () => boolean, log: Logger): () => boolean {
  let said: string | undefined;
  return () => {
    let fault: string | undefined;
    let err: unknown;
    let answer: unknown;
    try {
      answer = ready();
      if (typeof answer !== 'boolean') fault = `answered ${kind(answer)}, not true or false`;
      // An async check that fails rejects with nobody to hear it: an unhandled rejection ends the host.
      if (isPromise(answer)) Promise.resolve(answer).catch(() => {});
    } catch (thrown) {
      fault = 'threw';
      err = thrown;
    }
    if (fault !== undefined && fault !== said) {
      log.error(err === undefined ? {} : { err }, `the ready option ${fault}: health answers unavailable`);
    }
    said = fault;
    return answer === true;
  };
}

function kind(value: unknown): string {
  if (isPromise(value)) return 'a Promise';
  if (value === null || value === undefined) return String(value);
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
