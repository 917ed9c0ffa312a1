// Fuzz generators for HTTP itself: random bytes, token soup, garbled request lines, truncated requests,
// random and oversized headers, other methods and paths. Request smuggling is in fuzz-smuggling.ts.
import {
  ALNUM,
  CTRL,
  type Generator,
  HIGH,
  http,
  invalidEventBody,
  REFUSED,
  segmentHeaders,
  serialise,
  TOKEN,
  UNKNOWN_KEY,
  validEvent,
} from './fuzz-cases.ts';

export const randomBytes: Generator = (r) => ({
  generator: 'random-bytes',
  expect: REFUSED,
  raw: r.bytes(r.logInt(1, 8192)),
  end: true,
});

/** HTTP-looking token soup after a request line and Host: framing in pieces, in any order. */
export const tokenSoup: Generator = (r) => {
  const tokens = [
    'POST',
    'GET',
    ' ',
    '/',
    'HTTP/1.1',
    'HTTP/1.0',
    '\r\n',
    '\n',
    '\r',
    ':',
    ': ',
    'Content-Length',
    'Transfer-Encoding',
    'chunked',
    'Authorization',
    `Basic ${Buffer.from(`${UNKNOWN_KEY}:`).toString('base64')}`,
    '0',
    '5',
    'ffffffff',
    '\r\n\r\n',
    '{',
    '}',
    '"type":"track"',
    '\x00',
    '\t',
    r.string(r.int(1, 20), TOKEN),
  ];
  let text = 'POST / HTTP/1.1\r\nHost: localhost\r\n';
  for (let i = r.int(1, 60); i > 0; i--) text += r.pick(tokens);
  return { generator: 'token-soup', expect: REFUSED, raw: Buffer.from(text, 'latin1'), end: true };
};

/** A request whose request line is mutated byte by byte (an unknown key: never acceptable). */
export const garbledRequestLine: Generator = (r) => {
  const rest = serialise(http(invalidEventBody(r), segmentHeaders(UNKNOWN_KEY)));
  const split = rest.indexOf('\r\n');
  const line = [...rest.subarray(0, split)];
  for (let n = r.int(1, 4); n > 0; n--) {
    const at = r.int(0, line.length);
    const byte = r.pick([0, 9, 10, 13, 32, 0x7f, 0xff, r.int(0, 255), r.int(0x21, 0x7e)]);
    const op = r.int(0, 3);
    if (op === 0) line[at] = byte;
    else if (op === 1) line.splice(at, 1);
    else if (op === 2) line.splice(at, 0, byte);
    else line.splice(at, 0, ...line.slice(0, r.int(1, line.length)));
  }
  // Garbled into a well-formed version other than 1.x (HTTP/3.1): "not supported" is a fair answer too.
  const version = /HTTP\/(\d\.\d)$/.exec(Buffer.from(line).toString('latin1'))?.[1];
  const unsupported = version !== undefined && version !== '1.0' && version !== '1.1';
  return {
    generator: 'garbled-request-line',
    expect: unsupported ? [...REFUSED, 505] : REFUSED,
    raw: Buffer.concat([Buffer.from(line), rest.subarray(split)]),
  };
};

/** A valid event cut short anywhere: never a complete request, so never processed. */
export const truncated: Generator = (r) => {
  const whole = serialise(http(Buffer.from(JSON.stringify(validEvent(r)))));
  return {
    generator: 'truncated-request',
    expect: [400],
    raw: whole.subarray(0, r.int(1, whole.length - 1)),
    end: true,
  };
};

const EXCLUDED_NAMES = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'authorization',
  'content-type',
  'expect',
  'x-segment-settings',
  'connection',
  'upgrade',
]);

/** Random header names and values, control characters and obs-text included, around an invalid event. */
export const randomHeaders: Generator = (r) => {
  const headers = segmentHeaders();
  const body = invalidEventBody(r);
  headers.push(['Content-Length', String(body.length)]);
  let rawOnly = false;
  for (let n = r.int(1, 20); n > 0; n--) {
    let name = r.string(r.int(1, 30), TOKEN);
    if (r.chance(0.2)) {
      name += r.pick([' ', '\t', ':', '"', '(', '\x00', '\x7f', '\xe9', '@']);
      rawOnly = true;
    }
    if (EXCLUDED_NAMES.has(name.toLowerCase())) name = `x-${name}`;
    let value = r.string(r.int(0, 200), `${TOKEN} `);
    if (r.chance(0.3)) {
      value += r.string(r.int(1, 5), CTRL);
      rawOnly = true;
    }
    if (r.chance(0.2)) value += r.string(r.int(1, 5), HIGH);
    headers.push([name, value]);
  }
  return { generator: 'random-headers', expect: [400], http: http(body, headers), rawOnly };
};

/** Request line and headers past 16 KiB, or more than 100 headers: 431. */
export const oversizedHeaders: Generator = (r) => {
  const body = invalidEventBody(r);
  const headers = segmentHeaders();
  headers.push(['Content-Length', String(body.length)]);
  const shape = r.int(0, 3);
  if (shape === 0) {
    headers.push(['X-Big', 'b'.repeat(r.int(16 * 1024, 64 * 1024))]);
    return {
      generator: 'oversized-headers/one',
      expect: [431],
      codes: ['SEG_HEADERS_TOO_LARGE'],
      http: http(body, headers),
    };
  }
  if (shape === 1) {
    for (let i = r.int(200, 600); i > 0; i--) headers.push([`X-Many-${i}`, 'v'.repeat(90)]);
    return {
      generator: 'oversized-headers/many',
      expect: [431],
      codes: ['SEG_HEADERS_TOO_LARGE'],
      http: http(body, headers),
    };
  }
  if (shape === 2) {
    const path = `/f${'a'.repeat(r.int(16 * 1024, 40 * 1024))}`;
    return {
      generator: 'oversized-headers/url',
      expect: [431],
      codes: ['SEG_HEADERS_TOO_LARGE'],
      http: http(body, headers, 'POST', path),
    };
  }
  // More than 100 headers but under 16 KiB: refused whole, not judged on the first 100.
  for (let i = r.int(101, 200); i > 0; i--) headers.push([`X-${i}`, 'v']);
  // Raw only: Node's client would put Host last.
  return {
    generator: 'oversized-headers/over-count',
    expect: [431],
    codes: ['SEG_HEADERS_TOO_LARGE'],
    http: http(body, headers),
    rawOnly: true,
  };
};

const METHODS = ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', 'MKCOL', 'LINK', 'PURGE'];

/** Other methods, other paths, methods llhttp does not know. */
export const methodsAndPaths: Generator = (r) => {
  const body = invalidEventBody(r);
  const shape = r.int(0, 3);
  if (shape === 0) {
    return {
      generator: 'method-path/method',
      expect: [405],
      codes: ['SEG_METHOD_NOT_ALLOWED'],
      http: http(body, segmentHeaders(), r.pick(METHODS)),
    };
  }
  if (shape === 1) {
    const path = `/f${r.string(r.int(0, 40), `${ALNUM}/%.-_~!$&'()*+,;=:@`)}`;
    const method = r.pick(['POST', ...METHODS]);
    return {
      generator: 'method-path/path',
      expect: [404],
      codes: ['SEG_NOT_FOUND'],
      http: http(body, segmentHeaders(), method, path),
    };
  }
  if (shape === 2) {
    const method = r.pick(['POST', 'PUT', 'DELETE', 'PATCH']);
    return {
      generator: 'method-path/health',
      expect: [405],
      http: http(body, segmentHeaders(), method, '/health'),
    };
  }
  const method = `X${r.string(r.int(1, 10), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ')}`;
  return {
    generator: 'method-path/unknown-method',
    expect: [400],
    raw: serialise(http(body, segmentHeaders(), method)),
  };
};
