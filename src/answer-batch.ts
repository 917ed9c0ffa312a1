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

// A turn's answers are written at the latest when this many wait, so that a turn that reads many
// requests does not hold the first one's answer for all of them.
const MAX_WAITING = 64;

/**
 * Whether the request's connection outlives its sender's FIN until its answers are written: both the
 * server's `httpAllowHalfOpen` and the socket's `allowHalfOpen` on, as createServer sets them. Else Node
 * ends it as it reads the FIN (lib/_http_server.js, socketOnEnd), which may come in the request's turn.
 */
function keepsHalfOpen(socket: Socket & { server?: { httpAllowHalfOpen?: boolean } }): boolean {
  return socket.allowHalfOpen && socket.server?.httpAllowHalfOpen === true;
}

/**
 * Empty success answers, written together once the event loop has taken every request its poll found
 * (in its check phase, `setImmediate`) instead of one by one as each event is taken. Under load each
 * write that finds its client asleep pays for waking it, and a client on this machine is woken far less
 * often by a burst than by a trickle (bench/HISTORY.md, "Answers written together"). A lone request
 * waits for no other: the loop reaches its check phase right after it.
 */
export class AnswerBatch {
  #waiting: PendingAnswer[] = [];
  #scheduled = false;
  /** A flush after the promise reactions of the moment is queued (`addSettled`). */
  #settling = false;
  /**
   * The turns ended: the check-phase flushes run. A turn here is the span from one to the next, so a
   * request taken in a check phase, after its flush, belongs to the next one.
   */
  #turnsEnded = 0;
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
   * The turn in progress, for a request whose answer a promise will decide (`addSettled`). Schedules the
   * turn's end even when nothing waits: the count must move on, or an answer settled in a later turn
   * would pass for one of this turn's.
   */
  currentTurn(): number {
    this.#endOfTurn();
    return this.#turnsEnded;
  }

  /**
   * An answer a promise decided. Settled in `taken`, its request's turn (an `async` handler that awaited
   * nothing, a small batch of synchronous ones), it joins that turn's batch (`add`): written alone, it
   * would wake its client alone. Not where Node ends the connection as it reads the sender's FIN, which
   * may come in that same turn (keepsHalfOpen): there it could not wait. Settled later (a commit, I/O):
   * written once the promise reactions of the moment have run, with the answers waiting then; waiting
   * for the turn's end would hold it for all the work of the next poll (a `nextTick` queued by a reaction
   * runs once the microtask queue is empty). One that goes to no kernel socket is written at once (`add`).
   */
  addSettled(answer: PendingAnswer, taken: number): void {
    const { socket } = answer.req;
    if (!(socket instanceof Socket) || (taken === this.#turnsEnded && keepsHalfOpen(socket))) {
      this.add(answer);
      return;
    }
    this.#waiting.push(answer);
    if (this.#settling) return;
    this.#settling = true;
    process.nextTick(this.#flushSettled);
  }

  #endOfTurn(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#flushScheduled);
  }

  readonly #flushSettled = (): void => {
    this.#settling = false;
    this.#flush();
  };

  readonly #flushScheduled = (): void => {
    this.#scheduled = false;
    this.#turnsEnded++;
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
