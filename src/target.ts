import type { IncomingMessage } from 'node:http';
import type { Route } from './routes.ts';

// A request's target as the endpoint reads it: the path it is routed by, and the route there.

// The scheme and authority of an absolute-form target, `https://host:port` (RFC 9112 §3.2.2).
const ABSOLUTE_FORM_RE = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i;

/**
 * The path a request is routed by: an origin-form target (`/v1/track?x`) up to its query; an
 * absolute-form one (`https://host/v1/track`, which a server must accept, RFC 9112 §3.2.2) by the path
 * after its authority, `/` when it has none.
 */
export function targetPath(url: string): string {
  const start = url.charCodeAt(0) === 0x2f ? 0 : (ABSOLUTE_FORM_RE.exec(url)?.[0].length ?? 0);
  const query = url.indexOf('?', start);
  const path = query === -1 ? url.slice(start) : url.slice(start, query);
  return path === '' ? '/' : path;
}

// A percent-encoded letter, digit, `-`, `.`, `_` or `~`: the character itself (RFC 3986 §6.2.2.2).
const UNRESERVED_ESCAPE_RE = /%(?:3[0-9]|[46][1-9a-f]|[57][0-9a]|2[de]|5f|7e)/gi;
const unescaped = (encoded: string) => String.fromCharCode(Number.parseInt(encoded.slice(1), 16));

/**
 * The route of `table` at `path`, as sent or with its unreserved characters percent-encoded read as
 * themselves (`/v1/%74rack`): a 404 is final, and no event should be lost to its path's spelling. Health
 * and metrics are not routes: they are matched as sent, as a proxy's rules in front match them.
 */
export function routeAt(table: ReadonlyMap<string, Route>, path: string): Route | undefined {
  const route = table.get(path);
  if (route !== undefined || !path.includes('%')) return route;
  return table.get(unreservedRead(path));
}

/** `path` with its unreserved characters percent-encoded (`/v1/%74rack`) read as themselves. */
export const unreservedRead = (path: string): string =>
  path.includes('%') ? path.replace(UNRESERVED_ESCAPE_RE, unescaped) : path;

/**
 * The path of `req` for a log line: without the query or the authority of an absolute-form target, either
 * of which may carry a key (`?writeKey=`, `https://KEY:@host/`).
 */
export const loggedPath = (req: IncomingMessage): string => targetPath(req.url ?? '/');
