import assert from 'node:assert/strict';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { test } from 'node:test';
import { setImmediate as nextCheckPhase } from 'node:timers/promises';
import { AnswerBatch } from '../src/answer-batch.ts';

// Success answers are written together at the end of the event loop's turn (respond.ts): what a turn
// decided is written in order, each then reported done, and no later than the turn's end.

interface Written {
  readonly id: number;
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
}

function recorder() {
  const log: string[] = [];
  const written: Written[] = [];
  // Answers to a kernel socket's requests are the ones written together. The default request's connection
  // is at Node's defaults (not half open): for a settled answer's turn to count, use halfOpenRequest().
  const answer = (
    id: number,
    status = 200,
    fail = false,
    req = { socket: new Socket() } as IncomingMessage,
  ) => {
    let destroyed = false;
    const res = {
      headersSent: false,
      hasHeader: () => false, // no host's header set before
      writeHead(code: number, headers: OutgoingHttpHeaders) {
        if (fail) throw new Error('the socket refused the write');
        written.push({ id, status: code, headers });
        return res;
      },
      end() {
        res.headersSent = true;
        log.push(`write ${id}`);
      },
      destroy() {
        destroyed = true;
        log.push(`destroy ${id}`);
      },
      get destroyed() {
        return destroyed;
      },
    };
    return { req, res: res as unknown as ServerResponse, status, done: () => log.push(`done ${id}`) };
  };
  return { log, written, answer };
}

const open = () => false;

/**
 * A request on a connection that outlives its sender's FIN when both its server's `httpAllowHalfOpen`
 * and its socket's `allowHalfOpen` are on, as createServer sets them (the default here).
 */
function halfOpenRequest({ server = true, socket = true } = {}): IncomingMessage {
  const connection = Object.assign(new Socket({ allowHalfOpen: socket }), {
    server: { httpAllowHalfOpen: server },
  });
  return { socket: connection } as unknown as IncomingMessage;
}

/** Once the promise reactions queued so far have run, and the `nextTick`s they queued. */
async function afterReactions(): Promise<void> {
  await Promise.resolve();
  await new Promise((reactionsRun) => process.nextTick(reactionsRun));
}

test("a turn's answers wait for its end, then go out in order, each reported done after its write", async () => {
  const batch = new AnswerBatch(open);
  const { log, written, answer } = recorder();
  batch.add(answer(1));
  batch.add(answer(2, 202));
  batch.add(answer(3));
  assert.deepEqual(log, [], 'nothing is written before the turn ends');
  await nextCheckPhase();
  assert.deepEqual(log, ['write 1', 'done 1', 'write 2', 'done 2', 'write 3', 'done 3']);
  assert.deepEqual(
    written.map((w) => [w.id, w.status, w.headers.connection]),
    [
      [1, 200, undefined],
      [2, 202, undefined],
      [3, 200, undefined],
    ],
  );
  assert.equal(written[0]?.headers['content-length'], '0');
});

test('answers written once draining has begun end their connections, though decided before it', async () => {
  let draining = false;
  const batch = new AnswerBatch(() => draining);
  const { written, answer } = recorder();
  batch.add(answer(1));
  batch.add(answer(2));
  draining = true;
  await nextCheckPhase();
  assert.deepEqual(
    written.map((w) => w.headers.connection),
    ['close', 'close'],
  );
});

test('answers to HTTP/2 streams written while draining say nothing of the connection the streams share', async () => {
  // Connection: close on an HTTP/2 answer is not HTTP/2 (RFC 9113 §8.2.2): Node warned and dropped it.
  const batch = new AnswerBatch(() => true);
  const { written, answer } = recorder();
  const stream = { closed: false, close() {} };
  const req = { socket: new Socket(), httpVersionMajor: 2, stream } as unknown as IncomingMessage;
  batch.add(answer(1, 200, false, req));
  await nextCheckPhase();
  assert.deepEqual(
    written.map((w) => w.headers.connection),
    [undefined],
  );
});

test('a lone answer goes out in the turn it was decided in, and the next turn starts a new batch', async () => {
  const batch = new AnswerBatch(open);
  const { log, answer } = recorder();
  batch.add(answer(1));
  await nextCheckPhase();
  assert.deepEqual(log, ['write 1', 'done 1']);
  batch.add(answer(2));
  await nextCheckPhase();
  assert.deepEqual(log, ['write 1', 'done 1', 'write 2', 'done 2']);
});

test('a turn that decides many answers writes them 64 at a time instead of holding the first', async () => {
  const batch = new AnswerBatch(open);
  const { log, answer } = recorder();
  for (let id = 1; id <= 63; id++) batch.add(answer(id));
  assert.equal(log.length, 0);
  batch.add(answer(64));
  assert.equal(log.filter((line) => line.startsWith('write')).length, 64, 'the 64th answer writes all');
  batch.add(answer(65));
  assert.equal(log.length, 128, 'the 65th waits for the turn to end');
  await nextCheckPhase();
  assert.deepEqual(log.slice(128), ['write 65', 'done 65']);
});

test('an answer that cannot be written ends its connection; the others are written all the same', async () => {
  const batch = new AnswerBatch(open);
  const { log, answer } = recorder();
  batch.add(answer(1));
  batch.add(answer(2, 200, true));
  batch.add(answer(3));
  await nextCheckPhase();
  assert.deepEqual(log, ['write 1', 'done 1', 'destroy 2', 'done 2', 'write 3', 'done 3']);
});

test("answers decided by a promise that settles in a later turn go out once its reactions have run, before that turn's end", async () => {
  const batch = new AnswerBatch(open);
  const { log, answer } = recorder();
  // Two events taken in one turn, handed to a store whose commit settles them in a later one.
  const taken = batch.currentTurn();
  await nextCheckPhase();
  let seenAtTurnEnd: string[] | undefined;
  setImmediate(() => {
    seenAtTurnEnd = [...log];
  });
  // A commit settles a group: its events' answers come through reaction chains of different lengths.
  const committed = Promise.resolve();
  committed.then(() => batch.addSettled(answer(1, 200, false, halfOpenRequest()), taken));
  committed
    .then(() => undefined)
    .then(() => batch.addSettled(answer(2, 200, false, halfOpenRequest()), taken));
  assert.deepEqual(log, []);
  await nextCheckPhase();
  assert.deepEqual(seenAtTurnEnd, ['write 1', 'done 1', 'write 2', 'done 2']);
});

test("answers a promise settled in the turn that took their requests go out with that turn's, at its end", async () => {
  // An async handler that awaits nothing settles before the loop reads the next request: written at
  // once, each answer would wake its client on its own (bench/HISTORY.md, "Answers written together").
  // Their server lets a half-closed connection finish (createServer's does): the answers may wait.
  const batch = new AnswerBatch(open);
  const { log, answer } = recorder();
  for (const id of [1, 2]) {
    const taken = batch.currentTurn();
    Promise.resolve().then(() => batch.addSettled(answer(id, 200, false, halfOpenRequest()), taken));
  }
  await afterReactions();
  assert.deepEqual(log, [], "held for the turn's end");
  batch.add(answer(3, 200, false, halfOpenRequest()));
  await nextCheckPhase();
  assert.deepEqual(log, ['write 1', 'done 1', 'write 2', 'done 2', 'write 3', 'done 3']);
});

// Node ends a connection as it reads its sender's FIN, which may come in the turn of the request, unless
// both the server and the socket let it stay half open: a sender that half-closed would not hear an
// answer kept for the turn's end.
const halfOpenCases = [
  { server: false, socket: false },
  { server: false, socket: true },
  { server: true, socket: false },
];
for (const { server, socket } of halfOpenCases) {
  test(`answers settled in their request's turn go out once the reactions have run, the server's httpAllowHalfOpen ${server}, the socket's allowHalfOpen ${socket}`, async () => {
    const batch = new AnswerBatch(open);
    const { log, answer } = recorder();
    for (const id of [1, 2]) {
      const taken = batch.currentTurn();
      const req = halfOpenRequest({ server, socket });
      Promise.resolve().then(() => batch.addSettled(answer(id, 200, false, req), taken));
    }
    await afterReactions();
    assert.deepEqual(log, ['write 1', 'done 1', 'write 2', 'done 2']);
  });
}

test("an answer settled in a later turn is not held behind the current turn's answers", async () => {
  // At Node's defaults a synchronous handler's 200 waits for the turn's end all the same (README): a
  // settled answer beside it goes out once the reactions have run, and takes it along.
  const batch = new AnswerBatch(open);
  const { log, answer } = recorder();
  const taken = batch.currentTurn();
  await nextCheckPhase();
  batch.add(answer(1));
  Promise.resolve().then(() => batch.addSettled(answer(2), taken));
  await afterReactions();
  assert.deepEqual(log, ['write 1', 'done 1', 'write 2', 'done 2']);
});

test('an answer a promise decided that goes to no kernel socket is written at once', async () => {
  const batch = new AnswerBatch(open);
  const { log, answer } = recorder();
  const taken = batch.currentTurn();
  batch.addSettled(answer(1, 200, false, { socket: {} } as IncomingMessage), taken);
  await nextCheckPhase();
  batch.addSettled(answer(2, 200, false, { socket: {} } as IncomingMessage), taken);
  assert.deepEqual(log, ['write 1', 'done 1', 'write 2', 'done 2']);
});

test('while draining, only the answer to the last request read on a connection closes it', async () => {
  const batch = new AnswerBatch(() => true);
  const { written, answer } = recorder();
  // Three requests pipelined on one connection, as Node's parser leaves it: the last one read is its
  // `incoming`. Their answers are decided last first.
  const socket = { parser: { incoming: undefined as unknown } };
  const [first, second, third] = [1, 2, 3].map(() => ({ socket }) as unknown as IncomingMessage);
  socket.parser.incoming = third;
  batch.add(answer(3, 200, false, third));
  batch.add(answer(1, 200, false, first));
  batch.add(answer(2, 200, false, second));
  await nextCheckPhase();
  assert.deepEqual(
    written.map((w) => [w.id, w.headers.connection]),
    [
      [3, 'close'],
      [1, undefined],
      [2, undefined],
    ],
  );
});
