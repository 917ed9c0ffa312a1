import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import type { Transform } from 'node:stream';
import { Deadline, type Deadlines } from './deadlines.ts';
import { bytesAfter, type Coding, decoderFor, type MakeDecoder } from './encoding.ts';
import { EndpointError } from './errors.ts';
import { filled, gather } from './gathered.ts';
import { wasReset } from './http2.ts';
import { bodyTooLarge } from './refusals.ts';
import { decodedRoom } from './routes.ts';
import { readOnReadable, takenByTheHost } from './taken-by-host.ts';

// Reading a request's body as a stream: every byte counted against the limit (decompressed bytes too),
// a deadline for the whole body, and the bytes checked to be UTF-8. This runs for every event: no
// promise, no timer of its own (the deadline joins its handler's list, swept on one interval), and
// nothing added to Node's request object.

/** Where a body read ends: its text, or the refusal that stopped it. Exactly one is called, once. */
export interface BodySink {
  /** `started`: when the turn that checked and decoded it began (its key's share is charged from then). */
  bodyRead(text: string, started: number): void;
  bodyFailed(err: EndpointError): void;
}

/**
 * Reads the body as a stream, counting every chunk: reading stops at the first byte over `maxBytes` as
 * sent, or over `decodedBytes` decoded (413), and a body still incomplete at its deadline is a 408. The
 * bytes must be UTF-8 (JSON's encoding, RFC 8259 §8.1): anything else is a 400 rather than silently
 * replaced characters.
 */
export function readBody(
  req: IncomingMessage,
  maxBytes: number,
  deadlines: Deadlines,
  coding: Coding | undefined,
  sink: BodySink,
  decodedBytes = maxBytes,
): void {
  // Reset while an `authenticate` of the partner's ran: ended, not taken by the host.
  if (wasReset(req)) {
    sink.bodyFailed(new EndpointError('SEG_BODY_ABORTED'));
    return;
  }
  const unreadable = takenByTheHost(req, coding);
  if (unreadable !== undefined) {
    sink.bodyFailed(new EndpointError('SEG_INTERNAL', undefined, { cause: new Error(unreadable) }));
    return;
  }
  const reading = new BodyRead(req, maxBytes, Math.min(maxBytes, decodedBytes), sink, coding !== undefined);
  deadlines.add(reading);
  // Listened to at once, a compressed body too: a host's own 'data' listener (a byte counter) keeps the
  // stream flowing, and what came while the decoder loads would go to it alone.
  reading.listen();
  if (coding === undefined) return;
  decoderFor(coding).then(
    (makeDecoder) => reading.decoderLoaded(makeDecoder),
    (err: unknown) => reading.finish(new EndpointError('SEG_INTERNAL', undefined, { cause: err })),
  );
}

class BodyRead extends Deadline {
  /** The body's bytes so far (see `gather`). */
  body: Buffer | undefined;
  /** Bytes received, as sent (compressed, when they are). */
  received = 0;
  /** Bytes of the body itself: the same as `received`, or what the decoder made of them. */
  size = 0;
  /** Whether the body is compressed: its bytes gathered, then decoded whole (decodeAll). */
  readonly compressed: boolean;
  /** Set for a compressed body once its decoder's module is loaded; the decoder is made once all came. */
  makeDecoder: MakeDecoder | undefined;
  decoder: Transform | undefined;
  /** The compressed bytes so far, decoded in one piece once all came (see `decodeAll`). */
  input: Buffer | undefined;
  /** All of them, while the decoder works through them (see `leftOver`). */
  fed: Buffer | undefined;
  /** The request's 'end' came: all its bytes were read. */
  ended = false;
  done = false;
  readonly req: IncomingMessage;
  readonly maxBytes: number;
  readonly maxDecoded: number;
  /** What the body may take decoded: maxDecoded, and room for a byte-order mark under a route's limit. */
  readonly decodedRoom: number;
  readonly sink: BodySink;

  constructor(
    req: IncomingMessage,
    maxBytes: number,
    maxDecoded: number,
    sink: BodySink,
    compressed: boolean,
  ) {
    super();
    this.req = req;
    this.maxBytes = maxBytes;
    this.maxDecoded = maxDecoded;
    this.decodedRoom = decodedRoom(maxBytes, maxDecoded);
    this.sink = sink;
    this.compressed = compressed;
  }

  /** The decoder's module loaded: the body is decoded now if all of it came meanwhile. */
  decoderLoaded(makeDecoder: MakeDecoder): void {
    if (this.done) return; // timed out, refused or cut short meanwhile
    this.makeDecoder = makeDecoder;
    if (this.ended) this.decodeGathered(makeDecoder);
  }

  listen(): void {
    // Read by the host too (`req.pipe()` into a copy it reads later): the copy's backpressure pauses the
    // request once its buffer fills, and the body would wait out its deadline. Undone while it is read.
    if (this.req.listenerCount('data') > 0) this.req.on('pause', () => this.done || this.req.resume());
    // Left in place once the read is over (removing them costs more than the `done` check); a request's
    // listeners go with it.
    this.req.on('data', (chunk: Buffer | string) =>
      // Text where the host set an encoding (takenByTheHost): its bytes again.
      this.data(typeof chunk === 'string' ? Buffer.from(chunk, this.req.readableEncoding ?? 'utf8') : chunk),
    );
    this.req.on('end', () => this.end());
    // A 'close' before 'end': the body will not come whole (cut short, or the request destroyed after
    // its last byte but before 'end'). Node's aborted request emits 'error' only when someone listens
    // for it, and 'close' in any case. After 'end', a decoder may still be finishing: not an abort.
    this.req.on('close', () => {
      if (!this.ended) this.finish(new EndpointError('SEG_BODY_ABORTED'));
    });
    // Closed already (its sender gone while an `authenticate` of the partner's ran): no 'close' comes now.
    if (this.req.destroyed) {
      this.finish(new EndpointError('SEG_BODY_ABORTED'));
      return;
    }
    // Paused by its host: a 'data' listener does not start it again, and the body would wait out its deadline.
    if (this.req.readableFlowing === false) this.req.resume();
    // Nor does resume() while the host listens for 'readable' (until a refusal, as paused). Every chunk
    // read(), ours or the host's, comes to the 'data' listener above.
    readOnReadable(this.req, this);
  }

  /**
   * Bytes go through the decoder (gzip, deflate) before they count as the body. The limit holds for the
   * decompressed bytes too: a small body that inflates past it (a decompression bomb) is a 413 as soon as
   * it crosses the limit, and the decoder is stopped. The compressed bytes (no more than the limit either)
   * go to the decoder in one piece once all came: fed a chunk at a time, a body sent a byte a chunk took
   * one pass of zlib a byte, and longer than its deadline. The decoder is made then too: its form may
   * depend on the first bytes (deflate's), and a body that never comes whole holds no zlib state.
   */
  decodeAll(makeDecoder: MakeDecoder, compressed: Buffer): void {
    const decoder = makeDecoder(compressed);
    this.decoder = decoder;
    this.fed = compressed;
    decoder.on('data', (chunk: Buffer) => this.add(chunk));
    decoder.on('end', () => this.finish(this.leftOver(decoder)));
    decoder.on('error', () => {
      const coding = this.req.headers['content-encoding'];
      this.finish(new EndpointError('SEG_BAD_ENCODING', `Request body is not valid ${coding} data`));
    });
    decoder.end(compressed); // finishes on the decoder's 'end'
  }

  /** What follows the compressed data, if not padding: refused (bytesAfter). */
  leftOver(decoder: Transform): EndpointError | undefined {
    const taken = (decoder as Transform & { bytesWritten: number }).bytesWritten;
    const fed = this.fed ?? EMPTY;
    this.fed = undefined;
    return bytesAfter(fed, taken, this.req.headers['content-encoding']);
  }

  data(chunk: Buffer): void {
    if (this.done) return;
    this.received += chunk.length;
    if (!this.compressed) this.add(chunk);
    else if (this.received > this.maxBytes) this.finish(bodyTooLarge(this.maxBytes));
    else this.input = gather(this.input, this.received - chunk.length, chunk, this.maxBytes);
  }

  end(): void {
    this.ended = true;
    if (this.done) return;
    // Every byte came in time: the deadline is the sender's, decoding them is ours. zlib works on libuv's
    // threads, and its end is read by a later poll than the one that read the last bytes: after a held
    // loop, the sweep that follows that poll would refuse (408, not retried) a body that came whole.
    this.cancel();
    if (wasReset(this.req)) this.finish(new EndpointError('SEG_BODY_ABORTED'));
    else if (!this.compressed) this.finish(undefined);
    else if (this.makeDecoder !== undefined) this.decodeGathered(this.makeDecoder);
    // else decoded once the decoder's module is loaded (decoderLoaded)
  }

  decodeGathered(makeDecoder: MakeDecoder): void {
    const compressed = filled(this.input, this.received);
    this.input = undefined;
    this.decodeAll(makeDecoder, compressed);
  }

  add(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.size > this.decodedRoom) {
      const what = this.compressed ? 'Decompressed request body' : 'Request body';
      this.finish(bodyTooLarge(this.maxDecoded, what));
    } else {
      this.body = gather(this.body, this.size - chunk.length, chunk, this.maxDecoded);
    }
  }

  override expired(): void {
    // Bytes that came and were never read: the host held the request paused (after handing it over), not
    // a slow sender. Its bug, a 500 Segment retries, not a 408 it does not.
    const unread = this.req.readableLength;
    if (unread === 0) this.finish(new EndpointError('SEG_BODY_TIMEOUT'));
    else this.finish(new EndpointError('SEG_INTERNAL', undefined, { cause: new Error(heldPaused(unread)) }));
  }

  finish(err: EndpointError | undefined): void {
    if (this.done) return;
    this.done = true;
    this.cancel();
    this.decoder?.destroy();
    this.fed = undefined;
    if (err !== undefined) {
      this.req.pause();
      this.sink.bodyFailed(err);
      return;
    }
    const started = performance.now();
    const body = filled(this.body, this.size);
    this.body = undefined; // the request, and this reader with it, lives on while its handler runs
    if (!isUtf8(body)) {
      this.sink.bodyFailed(new EndpointError('SEG_INVALID_UTF8'));
      return;
    }
    // A UTF-8 byte order mark is legal in a file but not in JSON text; some senders add one.
    const start = body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
    this.sink.bodyRead(body.toString('utf8', start), started);
  }
}

const EMPTY = Buffer.alloc(0);

const heldPaused = (unread: number) =>
  `the request was paused by the host once the handler had it, and ${unread} bytes of its body lay unread at its deadline (req.pause(), or a pipe into a stream nobody reads, after calling the handler?)`;
