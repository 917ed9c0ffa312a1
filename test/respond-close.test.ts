import assert from 'node:assert/strict';
import { type IncomingMessage, ServerResponse } from 'node:http';
import { test } from 'node:test';
import { behindClosingAnswer } from '../src/connection-end.ts';
import { refusal } from '../src/refusals.ts';
import { sendError } from '../src/respond.ts';

// Which refusal ends its connection. Node writes nothing queued behind an answer that closes the
// connection, and still hands over the requests it read behind it: only the last request read on a
// connection may close it, and one read after that is never answered, so never taken.

const context = { challenge: 'Basic realm="test"', maxBodyBytes: 1_000 };

/** Requests read on one connection, as Node's parser leaves it: the last one read is its `incoming`. */
function connection(n: number): IncomingMessage[] {
  const socket = { parser: { incoming: undefined as unknown } };
  const requests = Array.from(
    { length: n },
    () =>
      ({
        socket,
        complete: true,
        headers: {},
        method: 'POST',
        httpVersionMajor: 1,
        httpVersionMinor: 1,
      }) as unknown as IncomingMessage,
  );
  socket.parser.incoming = requests[n - 1];
  return requests;
}

/** The refusal written for `req`, as Node wrote its head (to no socket): whether it ends the connection. */
function written(
  req: IncomingMessage,
  code: Parameters<typeof refusal>[0],
): { connection?: string | undefined } {
  const res = new ServerResponse(req);
  sendError(req, res, refusal(code), context);
  const head = (res as ServerResponse & { _header: string })._header;
  return { connection: /\r\nconnection: close\r\n/i.test(head) ? 'close' : undefined };
}

test('a malformed request with others read behind it keeps the connection for their answers', () => {
  const [first, second] = connection(2) as [IncomingMessage, IncomingMessage];
  assert.equal(written(first, 'SEG_BAD_REQUEST').connection, undefined);
  assert.equal(behindClosingAnswer(second), false, 'the request behind is taken and answered');
  assert.equal(written(second, 'SEG_BAD_REQUEST').connection, 'close');
});

test('a request read after an answer that closes its connection is one nobody can be answered for', () => {
  const [only] = connection(1) as [IncomingMessage];
  assert.equal(behindClosingAnswer(only), false);
  assert.equal(written(only, 'SEG_BAD_REQUEST').connection, 'close');
  const later = { socket: only.socket } as IncomingMessage;
  assert.equal(behindClosingAnswer(later), true);
});

test('so is one read after an answer Node ends the connection with (the client asked to close)', () => {
  const [only] = connection(1) as [IncomingMessage];
  const res = new ServerResponse(only);
  res.shouldKeepAlive = false; // what Node's server sets for a request with `Connection: close`
  sendError(only, res, refusal('SEG_AUTH_UNKNOWN'), context);
  assert.equal(behindClosingAnswer({ socket: only.socket } as IncomingMessage), true);
});

test('a refusal that does not close the connection leaves it open for what follows', () => {
  const [only] = connection(1) as [IncomingMessage];
  assert.equal(written(only, 'SEG_AUTH_UNKNOWN').connection, undefined);
  assert.equal(behindClosingAnswer({ socket: only.socket } as IncomingMessage), false);
});
