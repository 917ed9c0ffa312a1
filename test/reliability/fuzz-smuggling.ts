// The fuzz generator for request smuggling: ambiguous or broken framing (repeated or conflicting
// Content-Length and Transfer-Encoding, bad chunks, line folding, a request hidden in a body).
import { basic } from '../helpers.ts';
import {
  type Case,
  chunked,
  type Generator,
  http,
  invalidEventBody,
  KEY,
  segmentHeaders,
  serialise,
  UNKNOWN_KEY,
} from './fuzz-cases.ts';

/** Request smuggling shapes: ambiguous or broken framing. The event inside is invalid anyway. */
export const smuggling: Generator = (r) => {
  const event = invalidEventBody(r);
  const head = (extra: string) =>
    Buffer.from(
      `POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${basic(KEY)}\r\n` +
        `Content-Type: application/json\r\n${extra}\r\n`,
      'latin1',
    );
  const shape = r.int(0, 9);
  const make = (name: string, raw: Buffer, expect: readonly number[], end = false): Case => ({
    generator: `smuggle/${name}`,
    expect,
    raw,
    end,
  });
  switch (shape) {
    case 0: {
      const a = event.length;
      const b = a + r.int(1, 50) * (r.chance(0.5) ? 1 : -1);
      return make(
        'cl-cl',
        Buffer.concat([head(`Content-Length: ${a}\r\nContent-Length: ${Math.max(0, b)}\r\n`), event]),
        [400],
      );
    }
    case 1: {
      const te = 'Transfer-Encoding: chunked\r\n';
      const cl = `Content-Length: ${event.length}\r\n`;
      return make(
        'cl-te',
        Buffer.concat([head(r.chance(0.5) ? te + cl : cl + te), chunked(event, r)]),
        [400],
      );
    }
    case 2:
      return make(
        'te-te',
        Buffer.concat([
          head('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n'),
          chunked(event, r),
        ]),
        [400],
      );
    case 3: {
      const te = r.pick([
        'chunked, identity',
        'identity',
        'gzip',
        'xchunked',
        'chunked;q=1',
        'chunk',
        'chunked\x00',
        '\x0bchunked',
        ' ',
      ]);
      // A blank value passes Node's parser as a request without a body: the handler answers it (501, a
      // coding other than chunked), then the chunk that follows is malformed HTTP (400).
      return make(
        'te-value',
        Buffer.concat([head(`Transfer-Encoding: ${te}\r\n`), chunked(event, r)]),
        te.trim() === '' ? [400, 411, 501] : [400, 411],
      );
    }
    case 4: {
      const size = r.pick(['zz', '-1', '0x5', 'fffffffffffffffffffff', ' 5', '5 5', '+5', '', '\x00']);
      return make(
        'chunk-size',
        Buffer.concat([
          head('Transfer-Encoding: chunked\r\n'),
          Buffer.from(`${size}\r\n`),
          event,
          Buffer.from('\r\n0\r\n\r\n'),
        ]),
        [400],
      );
    }
    case 5: {
      // A chunk shorter than its size says: the parser reads on into what follows (end: nothing more).
      const extra = r.int(1, 100);
      return make(
        'chunk-short',
        Buffer.concat([
          head('Transfer-Encoding: chunked\r\n'),
          Buffer.from(`${(event.length + extra).toString(16)}\r\n`),
          event,
          Buffer.from('\r\n0\r\n\r\n'),
        ]),
        [400],
        true,
      );
    }
    case 6: {
      // A chunk longer than its size says: the bytes past it are not a chunk boundary.
      const less = r.int(1, event.length - 1);
      return make(
        'chunk-long',
        Buffer.concat([
          head('Transfer-Encoding: chunked\r\n'),
          Buffer.from(`${less.toString(16)}\r\n`),
          event,
          Buffer.from('\r\n0\r\n\r\n'),
        ]),
        [400],
        true,
      );
    }
    case 7: {
      const cl = r.pick([
        '+5',
        '-1',
        '0x10',
        '1e3',
        '5 5',
        '5,5',
        '',
        ' ',
        '99999999999999999999',
        'five',
        '5\x00',
      ]);
      return make('cl-value', Buffer.concat([head(`Content-Length: ${cl}\r\n`), event]), [400]);
    }
    case 8: {
      // Line folding (obsolete in RFC 9112) continuing a framing header.
      return make(
        'obs-fold',
        Buffer.concat([head(`Content-Length: ${event.length}\r\n ${r.int(0, 9)}\r\n`), event]),
        [400],
      );
    }
    default: {
      // An empty body, then a second request hidden where a lenient parser would have read the body.
      const hidden = serialise(http(event, segmentHeaders(UNKNOWN_KEY)));
      return make('hidden', Buffer.concat([head('Content-Length: 0\r\n'), hidden]), [400]);
    }
  }
};
