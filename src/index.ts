// segment-endpoint: the public contract. Everything not exported here is internal and free to change.

// The pipeline as a (req, res) handler, and as a server
export { createHandler } from './handler.ts';
export { createFetchHandler, type FetchHandler } from './fetch.ts';
export type { EndpointHandler } from './handler.ts';
export type { Metrics, MetricsSnapshot } from './metrics.ts';
export { createServer } from './server.ts';
export type { EndpointServer, ServerOptions } from './server.ts';
export type { HandlerOptions } from './options.ts';

// Segment's limits on what one request carries
export { SEGMENT_LIMITS } from './routes.ts';

// Handlers
export type { Context, EventHandler, HandlerResult, HandlerStatus, Handlers } from './dispatch.ts';

// Authentication
export { keyAuthenticator, parseBasicAuth } from './auth.ts';
export type { ApiKeySpec, AuthDecision, Authenticate, BasicCredentials } from './auth.ts';
export type { SignatureSecrets } from './signature.ts';

// Errors to throw from handlers, named as in Segment's Functions runtime
export {
  EndpointError,
  EventNotSupported,
  ForbiddenError,
  InvalidEventPayload,
  RetryError,
  UnauthorizedError,
  ValidationError,
} from './errors.ts';
export type { ErrorCode } from './errors.ts';

// Events: their types (from the TypeBox schemas), the schemas as plain JSON Schema, the casing helper
export type {
  AliasEvent,
  DeleteEvent,
  EventMap,
  GroupEvent,
  IdentifyEvent,
  PageEvent,
  ScreenEvent,
  SegmentEvent,
  TrackEvent,
} from './schemas.ts';
export { schemas } from './generated/validators.ts';
export { EVENT_TYPES } from './types.ts';
export type { EventType } from './types.ts';
export { field } from './normalize.ts';
export type { CheckedSettings, Settings } from './settings.ts';
export type { SettingsSchema } from './settings-schema.ts';

// The default durable store
export type { StoreOptions } from './sinks/file-io.ts';
export { type StoredRecord, storeHandlers } from './sinks/file-records.ts';
export type { TornLine } from './sinks/file-repair.ts';
export { NdjsonStore } from './sinks/file-store.ts';
export {
  type FileIdentity,
  type FileStat,
  loopIo,
  nodeIo,
  type OpenFlags,
  type StoreIo,
} from './sinks/file-io.ts';
export type { StoreLock } from './sinks/store-lock.ts';

// Duplicate suppression (Segment delivers at least once)
export { MemoryIdempotencyStore } from './idempotency.ts';
export type { Claim, IdempotencyStore, MemoryIdempotencyOptions } from './idempotency.ts';
export { openRedisIdempotency, RedisIdempotencyStore } from './idempotency-redis.ts';
export type { RedisIdempotencyOptions } from './idempotency-redis.ts';
export type { RedisClient } from './redis-client.ts';

// Logging
export { jsonLogger, silentLogger } from './log.ts';
export type { EventLogger, Logger, LogLevel } from './log.ts';
export { CheckpointError, LineTooLongError, readStore } from './read/store-reader.ts';
export type { ReadStoreOptions, StoredLine, StoreHole } from './read/store-reader.ts';
