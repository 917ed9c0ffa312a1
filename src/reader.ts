import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import type { Transform } from 'node:stream';
import { type Coding, decoderFor } from './encoding.ts';
import { bodyTooLarge, EndpointError } from './errors.ts';

// Reading a request's body as a stream: every byte counted against the limit (decompressed bytes too),
// a deadline for the whole body, and the bytes checked to be UTF-8.

/**
 * Reads the body as a stream, counting every chunk: reading stops at the first byte over `maxBytes`
 * (413), and a body still incomplete after `timeoutMs` is a 408. The bytes must be UTF-8 (JSON's
 * encoding, RFC 8259 §8.1): anything else is a 400 rather than silently replaced characters.
 */
export function readBody(
  req: IncomingMessage,
  maxBytes: number,
  timeoutMs: number,
  coding: Coding | undefined,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const reading = new BodyRead(req, maxBytes, resolve, reject);
    reading.timer = setTimeout(onTimeout, timeoutMs, reading);
    (req as ReadingRequest)[READING] = reading;
    if (coding === undefined) {
      listen(req);
      return;
    }
    // The body waits in the request's buffer (no 'data' listener yet) while the decoder loads.
    decoderFor(coding).then(
      (decoder) => {
        if ((req as ReadingRequest)[READING] !== reading) return; // timed out meanwhile
        reading.decode(decoder);
        listen(req);
      },
      (err: unknown) => reading.finish(new EndpointError('SEG_INTERNAL', undefined, { cause: err })),
    );
  });
}

function listen(req: IncomingMessage): void {
  req.on('data', onData);
  req.on('end', onEnd);
  req.on('error', onAborted);
  req.on('close', onClose);
}

// The listeners are module functions, called with the request as `this`, and the state of a read
// lives in one object: no closures made per request (this runs for every event).
const READING = Symbol('segment-endpoint.reading');
type ReadingRequest = IncomingMessage & { [READING]?: BodyRead };

class BodyRead {
  readonly chunks: Buffer[] = [];
  /** Bytes received, as sent (compressed, when they are). */
  received = 0;
  /** Bytes of the body itself: the same as `received`, or what the decoder made of them. */
  size = 0;
  timer: NodeJS.Timeout | undefined;
  decoder: Transform | undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly maxBytes: number,
    readonly resolve: (text: string) => void,
    readonly reject: (err: EndpointError) => void,
  ) {}

  /**
   * Bytes go through `decoder` (gzip, deflate) before they count as the body. The limit holds for the
   * decompressed bytes too: a small body that inflates past it (a decompression bomb) is a 413 as soon as
   * it crosses the limit, and the decoder is stopped.
   */
  decode(decoder: Transform): void {
    this.decoder = decoder;
    decoder.on('data', (chunk: Buffer) => this.add(chunk));
    decoder.on('end', () => this.finish(undefined));
    decoder.on('error', () => {
      const coding = this.req.headers['content-encoding'];
      this.finish(new EndpointError('SEG_BAD_ENCODING', `Request body is not valid ${coding} data`));
    });
  }

  add(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.size > this.maxBytes) {
      const what = this.decoder === undefined ? 'Request body' : 'Decompressed request body';
      this.finish(bodyTooLarge(this.maxBytes, what));
    } else {
      this.chunks.push(chunk);
    }
  }

  finish(err: EndpointError | undefined): void {
    const { req } = this;
    if ((req as ReadingRequest)[READING] !== this) return; // settled already
    this.decoder?.destroy();
    clearTimeout(this.timer);
    req.off('data', onData);
    req.off('end', onEnd);
    req.off('error', onAborted);
    req.off('close', onClose);
    (req as ReadingRequest)[READING] = undefined;
    if (err !== undefined) {
      req.pause();
      this.reject(err);
      return;
    }
    const { chunks } = this;
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, this.size);
    if (!isUtf8(body)) {
      this.reject(new EndpointError('SEG_INVALID_UTF8'));
      return;
    }
    // A UTF-8 byte order mark is legal in a file but not in JSON text; some senders add one.
    const start = body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
    this.resolve(body.toString('utf8', start));
  }
}

function onData(this: ReadingRequest, chunk: Buffer): void {
  const reading = this[READING];
  if (reading === undefined) return;
  reading.received += chunk.length;
  if (reading.decoder === undefined) reading.add(chunk);
  else if (reading.received > reading.maxBytes) reading.finish(bodyTooLarge(reading.maxBytes));
  else reading.decoder.write(chunk);
}

function onEnd(this: ReadingRequest): void {
  const reading = this[READING];
  if (reading?.decoder !== undefined)
    reading.decoder.end(); // finishes on the decoder's 'end'
  else reading?.finish(undefined);
}

function onAborted(this: ReadingRequest): void {
  this[READING]?.finish(new EndpointError('SEG_BODY_ABORTED'));
}

/** The connection closed: before the whole body came (`complete` is still false), the body was cut short. */
function onClose(this: ReadingRequest): void {
  if (!this.complete) this[READING]?.finish(new EndpointError('SEG_BODY_ABORTED'));
}

function onTimeout(reading: BodyRead): void {
  if ((reading.req as ReadingRequest)[READING] === reading) {
    reading.finish(new EndpointError('SEG_BODY_TIMEOUT'));
  }
}
