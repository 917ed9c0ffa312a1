import type { IncomingMessage, ServerResponse } from 'node:http';
import { AnswerBatch } from './answer-batch.ts';
import { keyFingerprint } from './auth.ts';
import { acceptBatch, type Carried, type EventResult, eventsOf } from './batch.ts';
import { batchAnswer } from './batch-answer.ts';
import { checkBodyHeaders, type ParsedBody, parseBody } from './body.ts';
import { CpuShare } from './cpu-share.ts';
import { type Credentials, CredentialsCache } from './credentials.ts';
import { Deadlines } from './deadlines.ts';
import { EndpointError } from './errors.ts';
import { Exchange } from './exchange.ts';
import { framedBody } from './framed-body.ts';
import { HeldBodies } from './held-bodies.ts';
import { EventIntake } from './intake.ts';
import { RateLimiter } from './limits.ts';
import type { Metrics } from './metrics.ts';
import type { ResolvedHandlerOptions } from './options.ts';
import { isPromise } from './promise.ts';
import { readBody } from './reader.ts';
import { type RefusalContext, sendContinue, sendError } from './respond.ts';
import { batchShape, type Route, routeBytes } from './routes.ts';
import { type Settings, SettingsCache, settingsProblem, writtenSettings } from './settings.ts';
import { refuseUnsigned, type SignatureSecrets, secretFor, verifySignature } from './signature.ts';
import { checkStoredSize, storedBudget } from './stored-size.ts';
import { loggedPath } from './target.ts';

/**
 * The event pipeline: what happens to a request the front door let through, in the order of Segment's
 * partner contract, up to the events it carries (each taken by the EventIntake, intake.ts). Its state
 * (decoded settings, accepted credentials, body deadlines) belongs to one handler. The steps run as plain
 * calls: a promise appears only where something asynchronous happens (an async authenticator or
 * handler, a batch).
 */
export class EventPipeline {
  readonly #opts: ResolvedHandlerOptions;
  /** Takes each event: its `late` work is what `idle()` waits for beyond the answers. */
  readonly intake: EventIntake;
  readonly #settings: SettingsCache;
  /** Who sent a request: `setApiKeys` replaces its keys. */
  readonly credentials: CredentialsCache;
  /** The secrets of `signatureSecret`, which `setSignatureSecret` replaces. */
  signatureSecret: SignatureSecrets | undefined;
  readonly #deadlines: Deadlines;
  readonly #metrics: Metrics | undefined;
  readonly #observing: boolean;
  readonly #refusal: RefusalContext;
  readonly #limiter = new RateLimiter();
  readonly #cpuShare: CpuShare | undefined;
  readonly #successes: AnswerBatch;
  readonly #budget: number; // what the events of one request may take stored
  readonly #held: HeldBodies;

  constructor(
    opts: ResolvedHandlerOptions,
    metrics: Metrics | undefined,
    refusal: RefusalContext,
    draining: () => boolean,
  ) {
    this.#opts = opts;
    this.intake = new EventIntake(opts, metrics);
    if (metrics !== undefined) metrics.late = this.intake.late;
    this.#settings = new SettingsCache(opts.settingsSchema);
    this.credentials = new CredentialsCache(opts.authenticate, opts.handlerTimeoutMs);
    this.signatureSecret = opts.signatureSecret;
    this.#deadlines = new Deadlines(opts.bodyTimeoutMs);
    this.#metrics = metrics;
    this.#observing = metrics !== undefined || opts.accessLog;
    this.#refusal = refusal;
    this.#successes = new AnswerBatch(draining, opts.log);
    this.#budget = storedBudget(opts.maxBodyBytes);
    this.#held = new HeldBodies(opts.maxBodyBytes);
    this.#cpuShare = opts.cpuShare > 0 ? new CpuShare(opts.cpuShare) : undefined;
  }

  /**
   * One request: authenticate, decode the settings, read and parse the body, verify its signature, find
   * the events it carries, take each, answer, then call `done`. The first refusal is the answer.
   */
  handle(req: IncomingMessage, res: ServerResponse, route: Route, done: () => void): void {
    const started = performance.now();
    const x = new Exchange(this, req, res, route, this.#observing ? started : 0, done);
    try {
      const credentials = this.credentials.of(req);
      if (!isPromise(credentials)) {
        this.#authenticated(x, credentials, started);
        return;
      }
      credentials.then(
        (known) => this.#authenticated(x, known),
        (err: unknown) => this.refuse(x, err),
      );
    } catch (err) {
      this.refuse(x, err);
    }
  }

  /** `started`: when this turn began (a synchronous `authenticate` is charged with the rest). */
  #authenticated(x: Exchange, credentials: Credentials, started = performance.now()): void {
    x.apiKey = credentials.apiKey;
    x.decision = credentials.decision;
    x.inTurn = true;
    const { req, res, route } = x;
    try {
      const { decision } = credentials;
      x.rate = (typeof decision === 'object' ? decision.rate : undefined) ?? this.#opts.rateLimit;
      // Unsigned where a signature is required: refused before it takes any of the key's share or rate.
      x.secret = secretFor(decision, this.signatureSecret);
      if (x.secret !== undefined) refuseUnsigned(req.headers);
      // Before the body: one past its share or rate costs the others nothing; the share first (no token).
      if (this.#cpuShare !== undefined) {
        x.reserved = this.#cpuShare.admit(credentials.apiKey, started);
        x.followed = x.reserved >= 0;
      }
      if (x.rate > 0) this.#limiter.admit(credentials.apiKey, x.rate);
      x.owed = x.rate > 0 && x.secret !== undefined;
      x.settings = this.#settings.decode(req.headers['x-segment-settings']);
      if (x.settings === undefined) {
        throw new EndpointError('SEG_SETTINGS_INVALID', settingsProblem(req.headers['x-segment-settings']));
      }
      const framed = framedBody(req, this.#opts, route.kind !== 'event', batchShape(route));
      if (framed !== undefined) {
        x.worked = true;
        this.#carried(x, framed, framed.text, framed.sentBytes);
        return;
      }
      const { maxBodyBytes } = this.#opts;
      const decodedBytes = routeBytes(route, maxBodyBytes);
      const coding = checkBodyHeaders(req, maxBodyBytes, route.kind !== 'event', decodedBytes);
      // Only now, every check on the headers passed, is a sender waiting on Expect invited to send.
      sendContinue(res);
      readBody(req, maxBodyBytes, this.#deadlines, coding, x, decodedBytes);
    } catch (err) {
      this.refuse(x, err);
    } finally {
      this.#cpuShare?.turnEnded(x, started);
    }
  }

  /** The body came whole (called by the Exchange), checked and decoded in the turn begun at `started`. */
  received(x: Exchange, text: string, started = performance.now()): void {
    x.inTurn = true;
    try {
      let parsed: ParsedBody;
      try {
        // Its key's share looked at again: the requests let in with it were charged meanwhile.
        if (x.followed) this.#cpuShare?.proceed(x.apiKey as string, x.reserved, started);
        x.worked = true;
        x.held = this.#held.take(text.length);
        parsed = parseBody(text, this.#opts.maxDepth, x.req.headers['content-type'], batchShape(x.route));
      } catch (err) {
        this.refuse(x, err);
        return;
      }
      this.#carried(x, parsed, text);
    } finally {
      this.#cpuShare?.turnEnded(x, started);
    }
  }

  /** The body's events (those its guards refused apart, `refused`), each taken, then the answer. */
  #carried(x: Exchange, { value, refused }: ParsedBody, text: string | undefined, sentBytes?: number): void {
    let result: EventResult | Promise<EventResult>;
    try {
      const { secret } = x;
      if (secret !== undefined)
        verifySignature(x.headers, secret, value, text, this.#opts.signatureLegacyBatch);
      x.owed = false;
      const { route } = x;
      if (route.kind === 'event' && !Array.isArray(value)) {
        // One event, the body as sent: its own text goes with it. Its token was taken at admission.
        checkStoredSize(value, text, x.settings as Settings, this.#budget);
        result = this.intake.accept(x, value, 'Request body', text);
      } else {
        const carried = eventsOf(value, route, text, sentBytes, refused);
        if (!carried.batch) checkStoredSize(carried.events[0], text, x.settings as Settings, this.#budget);
        result = carried.batch
          ? this.#acceptAll(x, carried).then(batchAnswer)
          : this.intake.accept(x, carried.events[0], 'Request body', undefined);
      }
    } catch (err) {
      result = this.intake.requestFailed(err, x.apiKey);
    }
    if (!isPromise(result)) {
      this.answer(x, result);
      return;
    }
    const taken = this.#successes.currentTurn();
    result.then(
      (settled) => this.answer(x, settled, taken),
      (err: unknown) => this.refuse(x, err),
    );
  }

  /** Answers the request with what a thrown refusal amounts to. */
  refuse(x: Exchange, err: unknown): void {
    this.answer(x, this.intake.requestFailed(err, x.apiKey));
  }

  /**
   * Answers the request once, then tells the front door: a success through AnswerBatch (`taken`, given
   * only when a promise decided: the turn its request was taken in), a refusal at once.
   */
  answer(x: Exchange, result: EventResult, taken?: number): void {
    if (x.answered) return;
    x.answered = true;
    if (x.owed && result.error !== undefined) this.#limiter.giveBack(x.apiKey as string, x.rate);
    this.#held.release(x.held);
    this.#cpuShare?.answered(x);
    if (this.#observing) this.#observe(x, result);
    if (result.error === undefined) {
      x.status = result.status;
      if (taken !== undefined) this.#successes.addSettled(x, taken);
      else this.#successes.add(x);
      return;
    }
    // A client that went away mid-body is not answered: nobody is there to read it. (The same code thrown
    // by a partner's handler, its client still there, is answered.)
    if (result.error.code !== 'SEG_BODY_ABORTED' || !x.req.destroyed) {
      sendError(x.req, x.res, result.error, this.#refusal);
    }
    x.done();
  }

  /** A batch's events, each through the same steps as a single event (see acceptBatch). */
  #acceptAll(x: Exchange, carried: Carried): Promise<EventResult[]> {
    // Charged once the batch is measured: one refused whole as too large to store took nothing.
    const charge = (events: number) => {
      if (x.rate > 0) this.#limiter.charge(x.apiKey as string, x.rate, events);
    };
    const accept = (event: unknown, index: number) =>
      this.intake.accept(x, event, `Event #${index}`, undefined);
    const settingsBytes = writtenSettings(x.settings as Settings).bytes;
    const slice = (started: number) => this.#cpuShare?.turnEnded(x, started);
    const copied = this.#opts.idempotency && ((first: EventResult) => this.intake.copied(first));
    return acceptBatch(carried, settingsBytes, this.#budget, copied, accept, charge, slice);
  }

  #observe(x: Exchange, result: EventResult): void {
    const seconds = (performance.now() - x.started) / 1000;
    const { status, type } = result;
    this.#metrics?.request(type ?? 'unknown', status, seconds);
    if (this.#opts.accessLog) {
      const source = x.apiKey === undefined ? undefined : keyFingerprint(x.apiKey);
      const ms = Math.round(seconds * 1e4) / 10;
      const code = result.error?.code;
      this.#opts.log.info({ status, code, type, ms, source, path: loggedPath(x.req) }, 'event');
    }
  }
}
