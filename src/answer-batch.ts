import type { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { lastOnConnection } from './connection-end.ts';
import { cutAnswer, endSession, isHttp2 } from './http2.ts';
import type { Logger } from './log.ts';
import { hookThrew, sendStatus } from './respond.ts';

// Success answers written together at the end of the event loop's turn (see AnswerBatch).

/** An empty success answer decided, waiting for the end of its turn of the event loop. */
export interface PendingAnswer {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly status: number;
  /** Called once the answer is written. */
  readonly done: () => void;
}

/**
 * Whether Node ends the request's connection as it reads the sender's end of it, in that same turn:
 * unless its server lets half-open connections finish (`httpAllowHalfOpen`, and `allowHalfOpen` on a TLS
 * socket), as createServer's does.
 */
function endsAtSendersEnd(req: IncomingMessage): boolean {
  const socket = req.socket as Socket & { server?: { httpAllowHalfOpen?: boolean } };
  return socket instanceof Socket && !(socket.allowHalfOpen && socket.server?.httpAllowHalfOpen === true);
}

// A turn's answers are written at the latest when this many wait, so that a turn that reads many
// requests does not hold the first one's answer for all of them.
const MAX_WAITING = 64;

/**
 * Empty success answers, written together once the event loop has taken every request its poll found
 * (in its check phase, `setImmediate`) instead of one by one as each event is taken. Under load each
 * write that finds its client asleep pays for waking it, and a client on this machine is woken far less
 * often by a burst than by a trickle (bench/README.md, "Answers written together"). A lone request
 * waits for no other: the loop reaches its check phase right after it.
 */
export class AnswerBatch {
  #waiting: PendingAnswer[] = [];
  #scheduled = false;
  /** The turns of the loop whose end this batch has written (its check-phase flushes). */
  #turn = 0;
  readonly #closing: () => boolean;
  readonly #log: Logger | undefined;

  /**
   * `closing`: whether answers end their connections now (while draining), asked as they are written.
   * `log`: where an answer cut by its host's hook is said (once).
   */
  constructor(closing: () => boolean, log?: Logger) {
    this.#closing = closing;
    this.#log = log;
  }

  /**
   * An answer decided while the loop takes requests: written at the end of the turn, or with 63 others.
   * One that does not go to a kernel socket (the fetch handler's Response, an injected request) gains
   * nothing from waiting, and would wait behind whatever its host queued for the turn's end: written at
   * once.
   */
  add(answer: PendingAnswer): void {
    if (!(answer.req.socket instanceof Socket)) {
      this.#write(answer, this.#closing());
      return;
    }
    this.#waiting.push(answer);
    if (this.#waiting.length >= MAX_WAITING) this.#flush();
    else this.#endOfTurn();
  }

  /**
   * The turn of the loop in progress, for an answer a promise will decide (`addSettled`); its end is
   * scheduled, once a turn, whether or not anything is written then.
   */
  turn(): number {
    this.#endOfTurn();
    return this.#turn;
  }

  /**
   * An answer decided when a promise settled (an asynchronous handler; the store's commit, which settles
   * a group of events at once). Settled in `taken`, the turn its request was taken in (a handler that
   * awaited nothing): written at that turn's end with the turn's others, as `add`, unless its connection
   * ends when the sender ends its side (a host's server at Node's defaults: the answer could not wait
   * for the turn's end, and a sender that half-closed heard it before answers were written together).
   * Settled later:
   * written as soon as the promise reactions of the moment have run, with the others they decided.
   * Waiting for the end of the turn would hold a commit's answers for all the work of the next poll
   * (`nextTick` queued by a reaction runs once the microtask queue is empty).
   */
  addSettled(answer: PendingAnswer, taken: number): void {
    if (taken === this.#turn && !endsAtSendersEnd(answer.req)) {
      this.add(answer);
      return;
    }
    this.#waiting.push(answer);
    if (this.#waiting.length === 1) process.nextTick(this.#flushSettled);
  }

  #endOfTurn(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#flushScheduled);
  }

  readonly #flushSettled = (): void => {
    this.#flush();
  };

  readonly #flushScheduled = (): void => {
    this.#scheduled = false;
    this.#turn++;
    this.#flush();
  };

  #flush(): void {
    const answers = this.#waiting;
    this.#waiting = [];
    const closing = this.#closing();
    for (const answer of answers) this.#write(answer, closing);
  }

  #write({ req, res, status, done }: PendingAnswer, closing: boolean): void {
    try {
      // Over HTTP/2 a connection is not the request's to end: it takes no new stream (http2.ts).
      const http2 = closing && isHttp2(req);
      sendStatus(res, status, closing && !http2 && lastOnConnection(req));
      if (http2) endSession(req);
    } catch (err) {
      // Node's writes do not throw for a gone client; what did (a hook of the host's on the response) is
      // logged once, this answer's sender hears the connection end (and retries), and the rest of the
      // turn's answers still go out.
      cutAnswer(res);
      hookThrew(this.#log, err);
    }
    done();
  }
}
