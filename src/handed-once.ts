import type { Logger } from './log.ts';

// A host that hands one request to the handler more than once: the first call answers it.

const handed = new WeakSet<object>();
const saidHandedTwice = new WeakSet<Logger>();

/**
 * Whether `req` was handed to the handler before (a host that mounts it twice, or calls it again after an
 * await): that call took it, and answers it. Taken twice, an event without a messageId reached the
 * partner's handler twice, and a second read of a body still coming stopped Node's parser under it (a
 * bare 400, the event dropped). Said once for each logger. Any endpoint handler's call counts: two handlers
 * given one request would both answer it.
 */
export function handedBefore(req: object, log: Logger): boolean {
  if (!handed.has(req)) {
    handed.add(req);
    return false;
  }
  if (!saidHandedTwice.has(log)) {
    saidHandedTwice.add(log);
    log.error(
      {},
      'the host handed the same request to the endpoint twice (is its handler mounted twice?): each call after the first is ignored',
    );
  }
  return true;
}
