import type { ErrorObject } from 'ajv';
import * as generated from './generated/validators.ts';
import { EVENT_TYPES, type EventType } from './types.ts';

export type Validator = (event: Record<string, unknown>) => string | undefined;

type Compiled = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };

/**
 * The validator of each event type: Ajv's code for the schemas of schemas.ts, generated at build time
 * (scripts/generate-validators.ts). Each answers `undefined` for a valid event, else a message that
 * names the field, prefixed with the type: `track: "event" is required`.
 */
export function eventValidators(): Record<EventType, Validator> {
  const validators = Object.create(null) as Record<EventType, Validator>;
  for (const type of EVENT_TYPES) {
    const check = (generated as unknown as Record<string, Compiled>)[`${type}Event`] as Compiled;
    validators[type] = (event) => (check(event) ? undefined : `${type}: ${explain(check.errors ?? [])}`);
  }
  return validators;
}

const TYPE_NAMES: Record<string, string> = {
  object: 'an object',
  array: 'an array',
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'a boolean',
  null: 'null',
};

/**
 * With allErrors off, Ajv stops at the first failing keyword; for a union (anyOf) it first lists why each
 * branch failed. So the last error is the decisive one, and its siblings at the same path explain it.
 */
export function explain(errors: readonly ErrorObject[]): string {
  const last = errors[errors.length - 1];
  if (last === undefined) return 'invalid event';
  if (last.keyword === 'anyOf' && last.instancePath === '') return '"userId" or "anonymousId" is required';
  if (last.keyword === 'required') {
    const missing = (last.params as { missingProperty: string }).missingProperty;
    return `"${joinPath(last.instancePath, missing)}" is required`;
  }
  const name = `"${joinPath(last.instancePath)}"`;
  const here = errors.filter((e) => e.instancePath === last.instancePath);
  const length = here.find((e) => e.keyword === 'minLength' || e.keyword === 'maxLength');
  if (length?.keyword === 'minLength') return `${name} must not be empty`;
  if (length?.keyword === 'maxLength') {
    return `${name} must be at most ${(length.params as { limit: number }).limit} characters`;
  }
  // A field that takes several types names them all in one error (`type: ['string', 'null']`).
  const types = here
    .filter((e) => e.keyword === 'type')
    .flatMap((e) => (e.params as { type: string | string[] }).type);
  if (types.length > 0) return `${name} must be ${orList(types.map((t) => TYPE_NAMES[t] ?? t))}`;
  if (last.keyword === 'const') return `${name} must be ${JSON.stringify(last.params.allowedValue)}`;
  if (last.keyword === 'maxItems' && (last.params as { limit: number }).limit === 0) {
    return `${name} may be an array only when empty`;
  }
  return `${name} is invalid`;
}

function joinPath(instancePath: string, property?: string): string {
  const parts = instancePath.split('/').slice(1);
  if (property !== undefined) parts.push(property);
  return parts.map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')).join('.');
}

function orList(items: string[]): string {
  const unique = [...new Set(items)];
  if (unique.length <= 1) return unique[0] ?? '';
  return `${unique.slice(0, -1).join(', ')} or ${unique[unique.length - 1]}`;
}
