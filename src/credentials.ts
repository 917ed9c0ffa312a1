import type { IncomingMessage } from 'node:http';
import {
  type ApiKeySpec,
  type AuthDecision,
  type Authenticate,
  isFixed,
  repeats,
  requestApiKey,
  sameDigest,
} from './auth.ts';
import { checkDecision } from './auth-decision.ts';
import { Deadlines } from './deadlines.ts';
import { digest53 } from './digest.ts';
import { EndpointError } from './errors.ts';
import { KeyLoads } from './key-loads.ts';
import { isPromise, within } from './promise.ts';
import { atOnce, type Steps } from './slices.ts';

/** Who sent a request: the API key, and what the authenticator decided for it. */
export interface Credentials {
  readonly apiKey: string;
  readonly decision: AuthDecision;
}

interface Known {
  readonly header: string;
  readonly credentials: Credentials;
}

const MAX_KNOWN = 1024; // distinct Authorization headers accepted and kept
// Their characters kept at most: a host may take headers of 1 MiB, and a customer's key sent with a
// thousand long passwords (which the key check ignores) would keep a gigabyte. Past it they are
// forgotten, as past MAX_KNOWN; a longer header is never kept (only its parsing would be saved).
const MAX_KNOWN_CHARS = 4 * 1024 * 1024;

/**
 * Authentication with a memory. Segment sends the same Authorization header with every event of a
 * customer: a header this handler has accepted before is found again without parsing, decoding or
 * hashing it. It is looked up by a keyed digest (random seeds per process, so its timing says nothing
 * about any key) and confirmed by comparing the whole header in constant time. With the built-in key
 * authenticator (a fixed set of keys) the decision is kept too; a custom `authenticate` is asked every
 * time, only the header's parsing is saved. Only accepted headers are kept: unknown keys cannot fill it.
 */
export class CredentialsCache {
  #authenticate: Authenticate;
  readonly #fixed: boolean;
  readonly #known = new Map<number, Known>();
  #knownChars = 0;
  readonly #deadlines: Deadlines;
  /** Replacements of the keys asked for so far, and the latest installed: an earlier one is dropped. */
  #loads = 0;
  #installed = 0;
  readonly #queue = new KeyLoads((authenticate, load) => this.#install(authenticate, load));

  /** `timeoutMs`: how long an asynchronous `authenticate` may take (handlerTimeoutMs), then a 503. */
  constructor(authenticate: Authenticate, timeoutMs: number) {
    this.#authenticate = authenticate;
    this.#fixed = isFixed(authenticate);
    this.#deadlines = new Deadlines(timeoutMs);
  }

  /**
   * The fixed set of keys replaced by those `keys` makes (keyAuthenticator): headers accepted before are
   * decided again, so a key taken out is refused from the next request on.
   */
  replaceKeys(keys: Steps<Authenticate>): void {
    this.#takesKeys('setApiKeys');
    this.#install(atOnce(keys), ++this.#loads);
  }

  /**
   * replaceKeys, the list checked and the authenticator built in slices (key-loads.ts); a later
   * replacement wins.
   */
  async loadKeys(check: Steps<Array<string | ApiKeySpec>>): Promise<void> {
    this.#takesKeys('loadApiKeys');
    return this.#queue.add(++this.#loads, check);
  }

  /** Said before the keys are checked: a handler of options.authenticate takes none, good or bad. */
  #takesKeys(method: string): void {
    if (!this.#fixed) {
      throw new TypeError(`${method}: this handler was made with options.authenticate, not options.apiKeys`);
    }
  }

  #install(authenticate: Authenticate, load: number): void {
    // A later call's keys in use already: these are older. (A later call refused blocks nothing.)
    if (load < this.#installed) return;
    this.#installed = load;
    this.#authenticate = authenticate;
    this.#forget();
  }

  /** The characters of the accepted headers kept (at most MAX_KNOWN_CHARS). */
  get keptChars(): number {
    return this.#knownChars;
  }

  #forget(): void {
    this.#known.clear();
    this.#knownChars = 0;
  }

  /** The request's credentials, or a throw of the 401/403 to answer. */
  of(req: IncomingMessage): Credentials | Promise<Credentials> {
    const header = req.headers.authorization;
    // requestApiKey refuses a repeated Authorization header; a cached one must be refused all the same.
    const known = header === undefined ? undefined : this.#find(header, req.rawHeaders);
    if (known !== undefined && this.#fixed) return known.credentials;
    const apiKey = known?.credentials.apiKey ?? requestApiKey(req);
    // A header known already is not stored again (with a custom authenticator, only its key is kept).
    const remember = known === undefined ? header : undefined;
    const pending = this.#authenticate(apiKey);
    if (isPromise(pending)) {
      const late = () =>
        new EndpointError(
          'SEG_HANDLER_TIMEOUT',
          `authenticate did not answer within ${this.#deadlines.ms} ms`,
        );
      return within(pending, this.#deadlines, late).then((decision) =>
        this.#decided(remember, apiKey, decision),
      );
    }
    return this.#decided(remember, apiKey, pending);
  }

  #find(header: string, rawHeaders: readonly string[]): Known | undefined {
    const known = this.#known.get(digest53(header));
    if (known === undefined || !sameDigest(known.header, header)) return undefined;
    return repeats(rawHeaders, 'authorization') ? undefined : known;
  }

  #decided(header: string | undefined, apiKey: string, answer: AuthDecision): Credentials {
    const decision = this.#fixed ? answer : checkDecision(answer);
    if (decision === 'unknown' || decision === false) throw new EndpointError('SEG_AUTH_UNKNOWN');
    if (decision === 'forbidden') throw new EndpointError('SEG_FORBIDDEN');
    const credentials: Credentials = { apiKey, decision };
    if (header !== undefined && header.length <= MAX_KNOWN_CHARS) {
      // Requests that came while the authenticator answered keep the header again: counted once.
      const id = digest53(header);
      const replaced = this.#known.get(id)?.header.length;
      let chars = this.#knownChars - (replaced ?? 0) + header.length;
      if ((replaced === undefined && this.#known.size >= MAX_KNOWN) || chars > MAX_KNOWN_CHARS) {
        this.#forget();
        chars = header.length;
      }
      this.#known.set(id, { header, credentials });
      this.#knownChars = chars;
    }
    return credentials;
  }
}
