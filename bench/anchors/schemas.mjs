// Per-type Segment Spec schemas (TypeBox) compiled with Ajv: the validation work every anchor does.
// (The reference imports `typebox` 1.x; this project has @sinclair/typebox 0.34, whose Type.* give the
// equivalent JSON Schemas for these types.)
import { Type } from '@sinclair/typebox';
import Ajv from 'ajv';

const Common = {
  anonymousId: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  userId: Type.Optional(Type.Union([Type.String(), Type.Null()])),
  messageId: Type.Optional(Type.String()),
  timestamp: Type.Optional(Type.String()),
  sentAt: Type.Optional(Type.String()),
  receivedAt: Type.Optional(Type.String()),
  context: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  integrations: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  version: Type.Optional(Type.Union([Type.Number(), Type.String()])),
};
const Obj = Type.Record(Type.String(), Type.Unknown());
export const schemas = {
  identify: Type.Object({ ...Common, type: Type.Literal('identify'), traits: Type.Optional(Obj) }),
  track: Type.Object({
    ...Common,
    type: Type.Literal('track'),
    event: Type.String(),
    properties: Type.Optional(Obj),
  }),
  page: Type.Object({
    ...Common,
    type: Type.Literal('page'),
    name: Type.Optional(Type.String()),
    category: Type.Optional(Type.String()),
    properties: Type.Optional(Obj),
  }),
  screen: Type.Object({
    ...Common,
    type: Type.Literal('screen'),
    name: Type.Optional(Type.String()),
    properties: Type.Optional(Obj),
  }),
  group: Type.Object({
    ...Common,
    type: Type.Literal('group'),
    groupId: Type.String(),
    traits: Type.Optional(Obj),
  }),
  alias: Type.Object({
    ...Common,
    type: Type.Literal('alias'),
    previousId: Type.String(),
    userId: Type.String(),
  }),
};
const ajv = new Ajv({ allErrors: false });
export const validators = Object.fromEntries(Object.entries(schemas).map(([k, s]) => [k, ajv.compile(s)]));
