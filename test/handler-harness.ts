// What the handler tests share: a handler for every event type that records what it was given, and the
// pipeline built around it.
import {
  type Context,
  createHandler,
  type HandlerOptions,
  type Handlers,
  silentLogger,
} from '../src/index.ts';
import { API_KEY } from './helpers.ts';

export interface Seen {
  type: string;
  event: Record<string, unknown>;
  ctx: Context;
}

/** A handler for every type that records what it was given. */
export function recording(seen: Seen[] = []): Handlers {
  const record = (type: string) => (event: unknown, ctx: Context) => {
    seen.push({ type, event: event as Record<string, unknown>, ctx });
  };
  return {
    identify: record('identify'),
    track: record('track'),
    page: record('page'),
    screen: record('screen'),
    group: record('group'),
    alias: record('alias'),
    delete: record('delete'),
  };
}

/** createHandler taking API_KEY, recording into `seen` and logging nothing; `options` add or replace. */
export function endpoint(options: Partial<HandlerOptions> = {}, seen: Seen[] = []) {
  return createHandler({ apiKeys: [API_KEY], handlers: recording(seen), log: silentLogger, ...options });
}
