// The part of autocannon 9 (no types of its own) that `segment-endpoint load` uses: README "API" and
// lib/run.js, lib/httpClient.js, lib/requestIterator.js.
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';

  export interface AutocannonRequest {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    /** Called before each request is sent; returns the request to send (a falsy value restarts the list). */
    setupRequest?: (request: AutocannonRequest, context: object) => AutocannonRequest | null;
  }

  export interface AutocannonOptions {
    url: string;
    connections?: number;
    /** Seconds. */
    duration?: number;
    /** Requests per second across all connections, shared out between them. */
    overallRate?: number;
    /** Seconds without an answer before a request counts as a timeout (its connection is then remade). */
    timeout?: number;
    /** Milliseconds between samples; a stop takes effect at the next one. @default 1000 */
    sampleInt?: number;
    method?: string;
    requests?: AutocannonRequest[];
    ignoreCoordinatedOmission?: boolean;
    servername?: string;
  }

  export interface AutocannonResult {
    /** Seconds. */
    duration: number;
    connections: number;
    /** Connection errors and timeouts. */
    errors: number;
    timeouts: number;
    non2xx: number;
    statusCodeStats: Record<string, { count: number }>;
  }

  export interface Instance extends EventEmitter, PromiseLike<AutocannonResult> {
    stop(): void;
  }

  function autocannon(options: AutocannonOptions): Instance;
  export default autocannon;
}
