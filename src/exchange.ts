import { AsyncResource } from 'node:async_hooks';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { PendingAnswer } from './answer-batch.ts';
import type { AuthDecision } from './auth.ts';
import type { SharedRequest } from './cpu-share.ts';
import type { EndpointError } from './errors.ts';
import type { RequestFacts } from './intake.ts';
import type { EventPipeline } from './pipeline.ts';
import type { BodySink } from './reader.ts';
import type { Route } from './routes.ts';
import type { Settings } from './settings.ts';
import type { SignatureSecrets } from './signature.ts';

/**
 * One request on its way through the pipeline, and what its request-level checks established for each
 * event it carries. The one object a request makes besides its events: it is also where its body is
 * read to (a BodySink), so no closure or promise is made per step. The body's end comes from the
 * request stream's listeners, in the socket's async context: the rest of the pipeline (the handler, its
 * log lines) runs in the context the request came in with, as code after an `await` would, so that an
 * operator's AsyncLocalStorage (request-scoped logging, tracing) reaches the handler.
 */
export class Exchange implements BodySink, RequestFacts, PendingAnswer, SharedRequest {
  apiKey: string | undefined;
  decision: AuthDecision = 'allow';
  /** The secret its body must be signed with, if any. */
  secret: SignatureSecrets | undefined;
  /** Events a second its key may send; 0: no limit. */
  rate = 0;
  /**
   * A token of its key's rate taken before its signature was checked: given back if it is refused before
   * then (a body that is no JSON, a signature that does not match), not known to be the key holder's.
   */
  owed = false;
  settings: Settings | undefined;
  answered = false;
  /** The success answer's status (see AnswerBatch). */
  status = 200;
  /** Characters of its body counted against what bodies may hold at once (HeldBodies), until answered. */
  held = 0;
  // Followed by its key's share of the event loop (SharedRequest).
  followed = false;
  reserved = -1;
  worked = false;
  spent = 0;
  inTurn = false;
  readonly #scope = new AsyncResource('segment-endpoint.request');

  constructor(
    readonly pipeline: EventPipeline,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly route: Route,
    readonly started: number,
    readonly done: () => void,
  ) {}

  get headers(): IncomingHttpHeaders {
    return this.req.headers;
  }

  bodyRead(text: string, started: number): void {
    this.#scope.runInAsyncScope(this.pipeline.received, this.pipeline, this, text, started);
  }

  bodyFailed(err: EndpointError): void {
    this.#scope.runInAsyncScope(this.pipeline.refuse, this.pipeline, this, err);
  }
}
