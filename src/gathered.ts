// Bytes that come in chunks, held as one buffer: how the body reader keeps a body until it is whole.

const EMPTY = Buffer.alloc(0);

/**
 * `held`'s first `length` bytes, then `chunk`: bytes that come in chunks held as one buffer, never more than
 * `max` of them. The first chunk is kept as it came (most bodies come in one: no copy); later ones are
 * copied into a buffer of the reader's own, twice as large each time it fills (so each byte is copied
 * about twice at most). Kept as a Buffer a chunk, a body sent a byte a chunk cost ~400 bytes of memory a
 * byte. A buffer that came as a chunk is full (`length` is all of it): only the reader's own has room.
 */
export function gather(held: Buffer | undefined, length: number, chunk: Buffer, max: number): Buffer {
  if (held === undefined) return chunk;
  const size = length + chunk.length;
  let into = held;
  if (held.length < size) {
    into = Buffer.allocUnsafe(Math.max(size, Math.min(max, 2 * size)));
    held.copy(into, 0, 0, length);
  }
  chunk.copy(into, length);
  return into;
}

/** The `length` bytes gathered in `held`. */
export const filled = (held: Buffer | undefined, length: number): Buffer =>
  held === undefined ? EMPTY : held.length === length ? held : held.subarray(0, length);
