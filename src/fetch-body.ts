import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { describeValue } from './errors.ts';

// The fetch handler's request body (fetch.ts): a Request's web stream as the Node stream the pipeline reads.

/**
 * The Request's body as a Node stream, with the fields of an IncomingMessage the pipeline reads: one
 * read of the web stream for each read Node asks for. A class of its own rather than fields added to
 * `Readable.fromWeb`'s stream: every request then has one shape (fields added to a stream after it is
 * made gave each request's object a new one), and without fromWeb's layers the adapter costs about a
 * third less an event (bench/HISTORY.md, "The fetch handler's body").
 */
export class RequestBody extends Readable {
  readonly method: string;
  readonly url: string;
  /** Where the host mounted it, as express says it: the 404's message names the path with it. */
  readonly baseUrl: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  readonly httpVersion = '1.1';
  readonly httpVersionMajor = 1;
  readonly httpVersionMinor = 1;
  /** The whole body came, as Node's `complete` says it. */
  complete = false;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array> | undefined;

  constructor(request: Request, url: string, base: string, headers: IncomingHttpHeaders, raw: string[]) {
    super();
    this.method = request.method;
    this.url = url;
    this.baseUrl = base;
    this.headers = headers;
    this.rawHeaders = raw;
    this.#reader = request.body?.getReader();
  }

  override _read(): void {
    const reader = this.#reader;
    if (reader === undefined) {
      this.#ended();
      return;
    }
    reader.read().then(
      ({ done, value }) => {
        if (done) this.#ended();
        else if (!emptyChunk(value)) this.push(value);
        // Read again on the loop's next turn, while the body is still wanted: a stream of empty chunks
        // was read in a loop of promises that never let a timer run, its deadline's among them. Its one
        // reader, the pipeline's, reads it flowing and pauses it only at a refusal, for good.
        else setImmediate(() => this.readableFlowing && !this.destroyed && this._read());
      },
      // Errored with no reason, or a falsy one: destroy() would end the stream without an 'error'.
      (err: unknown) =>
        this.destroy((err || new Error(`the Request body failed: ${describeValue(err)}`)) as Error),
    );
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // A body its sender gave up on (the signal aborted): its source is told. One refused is only paused
    // (reader.ts): cancelled, a host's stream could end its connection before the answer is written.
    this.#reader?.cancel(err ?? undefined).catch(() => {});
    callback(err);
  }

  #ended(): void {
    this.complete = true;
    this.push(null);
  }
}

/** A chunk of no bytes, as a web stream may hand one (a string or any view of bytes). */
const emptyChunk = (value: unknown) =>
  typeof value === 'string' ? value.length === 0 : (value as { byteLength?: unknown })?.byteLength === 0;
