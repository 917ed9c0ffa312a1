import { type ApiKeySpec, type Authenticate, keyAuthenticatorSteps } from './auth.ts';
import { type Steps, slice } from './slices.ts';

// The work of loadApiKeys calls, a slice at a time on one queue. A burst of calls (a partner reloading
// its keys at each customer's signup) built every call's key set at once, side by side, each holding the
// event loop for a slice of its own every turn: ten calls of 200,000 keys took 640 MB and held the loop
// up to 220 ms.

type KeyList = Array<string | ApiKeySpec>;

/** One call: its list being checked, then its key set waiting to be built. */
interface Call {
  readonly load: number;
  readonly check: Steps<KeyList>;
  list: KeyList | undefined;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/**
 * loadApiKeys calls. Each call's list is checked as soon as it can be: its first slice in the call (a
 * short list is read before the call returns), the rest in the order the calls were made, a slice a turn,
 * ahead of any build; so every call's caller has its list read within milliseconds, and each refusal is
 * said. Then the key sets are built one at a time, the newest first: a newer call checked drops an older
 * build at its next slice, and that one starts over once the newer are done. Each set built is given to
 * `install` with its call's number (the latest installed wins); an older one is built all the same, to
 * refuse what setApiKeys would (a key repeated with other types). A burst holds the current set and one
 * more, not one a call.
 */
export class KeyLoads {
  readonly #install: (authenticate: Authenticate, load: number) => void;
  readonly #checking: Call[] = [];
  /** Checked calls, by their number: the last is built first. */
  readonly #checked: Call[] = [];
  #build: { readonly call: Call; readonly steps: Steps<Authenticate> } | undefined;
  #running = false;

  constructor(install: (authenticate: Authenticate, load: number) => void) {
    this.#install = install;
  }

  /** Call number `load`, whose list `check` checks: settles once its set is built, or refused. */
  add(load: number, check: Steps<KeyList>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const call: Call = { load, check, list: undefined, resolve, reject };
      if (!this.#checkSlice(call)) this.#checking.push(call);
      if (!this.#running) void this.#run();
    });
  }

  /** A slice a turn, checks first, until no work is left. */
  async #run(): Promise<void> {
    this.#running = true;
    while (this.#checking.length > 0 || this.#checked.length > 0) {
      await new Promise((resolve) => setImmediate(resolve));
      const call = this.#checking[0];
      if (call === undefined) this.#buildSlice();
      else if (this.#checkSlice(call)) this.#checking.shift();
    }
    this.#running = false;
  }

  /** A slice of `call`'s check: whether it is over (the call checked, or refused and rejected). */
  #checkSlice(call: Call): boolean {
    try {
      const done = slice(call.check);
      if (done === undefined) return false;
      call.list = done.value;
      const after = this.#checked.findIndex((other) => other.load > call.load);
      this.#checked.splice(after === -1 ? this.#checked.length : after, 0, call);
    } catch (err) {
      call.reject(err);
    }
    return true;
  }

  /** A slice of the newest checked call's build; an older one's build is dropped for it. */
  #buildSlice(): void {
    const call = this.#checked.at(-1) as Call;
    if (this.#build?.call !== call) {
      this.#build = { call, steps: keyAuthenticatorSteps(call.list as KeyList) };
    }
    try {
      const done = slice(this.#build.steps);
      if (done === undefined) return;
      this.#settled(call);
      this.#install(done.value, call.load);
      call.resolve();
    } catch (err) {
      this.#settled(call);
      call.reject(err);
    }
  }

  #settled(call: Call): void {
    this.#checked.splice(this.#checked.indexOf(call), 1);
    this.#build = undefined;
    call.list = undefined;
  }
}
