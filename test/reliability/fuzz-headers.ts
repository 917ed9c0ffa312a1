// Fuzz generators for the headers of the contract: Authorization (repeated, or never the configured
// key), X-Segment-Settings that is not base64 of a JSON object, Content-Type that is not JSON.
import { parseBasicAuth } from '../../src/index.ts';
import { basic } from '../helpers.ts';
import {
  ALNUM,
  type Generator,
  http,
  KEY,
  segmentHeaders,
  TOKEN,
  UNKNOWN_KEY,
  validEvent,
} from './fuzz-cases.ts';

/** Two Authorization headers, whatever they hold: ambiguous about the sender, so 401. */
export const duplicateAuthorization: Generator = (r) => {
  const event = Buffer.from(JSON.stringify(validEvent(r)));
  const name = () => r.pick(['Authorization', 'authorization', 'AUTHORIZATION', 'AuThOrIzAtIoN']);
  const value = () => r.pick([basic(KEY), basic(KEY, false), basic(UNKNOWN_KEY), 'Bearer x', 'Basic']);
  const headers = segmentHeaders().filter(([n]) => n !== 'Authorization');
  headers.splice(r.int(0, headers.length), 0, [name(), value()]);
  headers.splice(r.int(0, headers.length), 0, [name(), value()]);
  return {
    generator: 'duplicate-authorization',
    expect: [401],
    codes: ['SEG_AUTH_MALFORMED'],
    http: http(event, headers),
  };
};

const b64 = (text: string | Buffer) => Buffer.from(text).toString('base64');

/** Authorization headers that never name the configured key (checked with the endpoint's own decoder). */
export const badBasic: Generator = (r) => {
  const event = Buffer.from(JSON.stringify(validEvent(r)));
  const good = b64(`${KEY}:`);
  const candidates = [
    'Basic',
    'Basic ',
    'basic',
    `Bearer ${good}`,
    `Digest ${good}`,
    `Basic ${b64(`${UNKNOWN_KEY}:`)}`,
    `Basic ${b64(`:${KEY}`)}`,
    `Basic ${b64(':')}`,
    `Basic ${b64('')}`,
    `Basic ${b64(`${KEY.toUpperCase()}:`)}`,
    `Basic ${b64(` ${KEY}:`)}`,
    `Basic ${b64(`${KEY}\x00:`)}`,
    `Basic ${good}==`,
    `Basic ${good.slice(0, 4)}!${good.slice(4)}`,
    `Basic ${good} extra`,
    `Basic ${good}\xff`,
    `Basic ${b64(r.bytes(r.int(1, 64)))}`,
    `Basic ${r.string(r.int(1, 64), TOKEN)}`,
    `Basic ${b64(`${KEY}:`.repeat(r.int(2, 50)))}`,
    `Basic ${'A'.repeat(r.int(1000, 8000))}`,
    r.string(r.int(0, 100), `${TOKEN} `),
  ];
  let value = r.pick(candidates);
  if (parseBasicAuth(value)?.user === KEY) value = 'Basic';
  const headers = segmentHeaders().filter(([n]) => n !== 'Authorization');
  headers.push(['Authorization', value]);
  return { generator: 'bad-basic', expect: [401], http: http(event, headers) };
};

/** X-Segment-Settings that is not base64 of a JSON object. */
export const badSettings: Generator = (r) => {
  const event = Buffer.from(JSON.stringify(validEvent(r)));
  const obj = b64('{"a":1}');
  const value = r.pick([
    `${obj.slice(0, 3)}!${obj.slice(3)}`,
    `${obj}%`,
    `${obj}===`,
    `${obj} ${obj}`,
    b64('[]'),
    b64('"settings"'),
    b64('42'),
    b64('null'),
    b64('true'),
    b64('{'),
    b64('{"a":'),
    b64(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{}')])),
    b64(Buffer.concat([Buffer.from([0xff]), r.bytes(r.int(0, 100))])),
    b64('{"__proto__":{"admin":true}}'),
    b64('{"constructor":{"prototype":{"admin":true}}}'),
    ((depth: number) => b64(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`))(r.int(65, 1000)),
    r.string(r.int(1, 100), '!@#$%^&*()'),
  ]);
  const headers = segmentHeaders();
  headers.push(['X-Segment-Settings', value]);
  return {
    generator: 'bad-settings',
    expect: [400],
    codes: ['SEG_SETTINGS_INVALID'],
    http: http(event, headers),
  };
};

/** Content types that are not JSON. */
export const wrongContentType: Generator = (r) => {
  const event = Buffer.from(JSON.stringify(validEvent(r)));
  const value = r.pick([
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/jsonp',
    'application/json-patch',
    'application/xml',
    'json',
    'application/ json',
    '',
    '*/*',
    `${r.string(r.int(1, 10), ALNUM)}/${r.string(r.int(0, 10), ALNUM)}x`,
  ]);
  const headers = segmentHeaders().filter(([n]) => n !== 'Content-Type');
  headers.push(['Content-Type', value]);
  return {
    generator: 'content-type',
    expect: [415],
    codes: ['SEG_UNSUPPORTED_MEDIA_TYPE'],
    http: http(event, headers),
  };
};
