import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { ApiKeySpec } from './auth.ts';
import type { Metrics } from './metrics.ts';
import type { SignatureSecrets } from './signature.ts';

// What createHandler returns (handler.ts): the handler and what a host may do with it while it serves.

/** A plain `(req, res)` function, to mount in any node:http/https/http2 server, plus its lifecycle. */
export interface EndpointHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  (req: Http2ServerRequest, res: Http2ServerResponse): void;
  /** Stops taking events: new ones get 503 with `Connection: close`, health answers draining. */
  drain(): void;
  readonly draining: boolean;
  /** Events being processed now. */
  readonly inFlight: number;
  /** The path events are taken at. */
  readonly path: string;
  /** The counters served on `metricsPath`, when it is set. */
  readonly metrics: Metrics | undefined;
  /** Resolves once no event is being processed (a handler past its timeout counts: it still runs). */
  idle(): Promise<void>;
  /**
   * Replaces the keys of `apiKeys` (checked as that option is; a throw leaves the current ones): new
   * customers without a restart, a key taken out refused from the next request on.
   */
  setApiKeys(apiKeys: Iterable<string | ApiKeySpec>): void;
  /**
   * As setApiKeys, without holding the event loop: checked and built a few ms at a time, requests answered
   * meanwhile with the current keys. Rejects (the current keys staying) as setApiKeys throws. A later call
   * that succeeds (setApiKeys, loadApiKeys) wins, whichever finishes first; one refused does not. Calls
   * made meanwhile are each checked at once, their sets built one at a time, the newest first.
   */
  loadApiKeys(apiKeys: Iterable<string | ApiKeySpec>): Promise<void>;
  /**
   * Replaces the secret(s) of `signatureSecret` (checked as that option is; a throw leaves the current
   * ones), from the next request on: to rotate one, the new beside the old, then the new alone. A key's
   * own secrets still win.
   */
  setSignatureSecret(secret: SignatureSecrets): void;
}
