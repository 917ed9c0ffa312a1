// The URLs of the services the endpoint can use (--postgres, --idempotency-redis) hold a password more
// often than not: these say where a service is without it, and refuse a malformed URL without showing
// it (Node's own URL error carries the input whole).

export interface Service {
  readonly name: string;
  readonly schemes: readonly string[];
  readonly port: number;
  readonly example: string;
  /** What the URL's path may be, when the client takes only some paths; what it means, for the message. */
  readonly path?: { readonly re: RegExp; readonly means: string };
  /** Whether the client reads `?host=` and `?port=` over the URL's own (pg's connection strings do). */
  readonly hostInQuery?: boolean;
}

export const POSTGRES: Service = {
  name: 'PostgreSQL',
  schemes: ['postgres:', 'postgresql:'],
  port: 5432,
  example: 'postgres://user@host:5432/db',
  hostInQuery: true,
};
export const REDIS: Service = {
  name: 'Redis',
  schemes: ['redis:', 'rediss:'],
  port: 6379,
  example: 'redis://[[user]:password@]host[:port][/db]',
  path: { re: /^(?:\/\d*)?$/, means: 'a database number (/0)' },
};

const STAND_IN = 'stand-in.invalid'; // a host no URL of the operator's names (RFC 2606)

// `user:pa/ss@host`: a / ? or # before the @, where what came before it reads as a port, which most
// passwords are not: the URL does not parse at all.
const UNESCAPED_PASSWORD_RE = /^[a-z]+:\/\/[^@]*[/?#][^@]*@/i;

/** `host:port/path` of `url`, never its user or password; a TypeError naming neither if it is not one. */
export function serviceAddress(url: string, service: Service): string {
  // As pg reads one: a user and no host (`postgres://app@/db?host=/run/postgresql`, a Unix socket), which
  // WHATWG URLs refuse, is read with a stand-in host.
  const hostless = service.hostInQuery === true && url.includes('@/');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    if (UNESCAPED_PASSWORD_RE.test(url)) throw unescapedPassword(service);
    const standIn = hostless ? URL.parse(url.replace('@/', `@${STAND_IN}/`)) : null;
    if (standIn === null)
      throw new TypeError(`The ${service.name} URL is not a URL: expected ${service.example}`);
    parsed = standIn;
  }
  if (!service.schemes.includes(parsed.protocol)) {
    throw new TypeError(`The ${service.name} URL must start with ${service.schemes.join('// or ')}//`);
  }
  // A password holding / ? or # unescaped ends the host there: the rest of it would be read as the path,
  // query or fragment (and said, or shown as where the service is). The @ that followed it tells.
  if (`${parsed.pathname}${parsed.search}${parsed.hash}`.includes('@')) throw unescapedPassword(service);
  if (service.path !== undefined && !service.path.re.test(parsed.pathname)) {
    throw new TypeError(
      `The ${service.name} URL's path must be ${service.path.means}, not ${parsed.pathname}`,
    );
  }
  const path = parsed.pathname === '/' ? '' : parsed.pathname;
  const query = service.hostInQuery === true ? parsed.searchParams : undefined;
  const host = query?.get('host') || (parsed.hostname === STAND_IN ? '' : parsed.hostname) || 'localhost';
  return `${host}:${query?.get('port') || parsed.port || service.port}${path}`;
}

const unescapedPassword = (service: Service) =>
  new TypeError(
    `The ${service.name} URL has an @ after its host: percent-encode / ? # in a password (%2F %3F %23)`,
  );
