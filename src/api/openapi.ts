// /openapi.json, generated from the valibot schemas in schemas.ts (the same ones that validate requests), by a small
// converter for the schema kinds this API uses. Request schemas describe their input side: after a transform (path
// ids, limits) the document shows the string the client sends.
import * as v from 'valibot'
import type { Config } from '../config.ts'
import pkg from '../../package.json' with { type: 'json' }
import * as s from './schemas.ts'

type JsonSchema = Record<string, unknown>
type AnySchema = v.GenericSchema & {
  pipe?: (v.GenericSchema | { kind: string; type: string; requirement?: unknown })[]
  wrapped?: AnySchema
  entries?: Record<string, AnySchema>
  item?: AnySchema
  key?: AnySchema
  value?: AnySchema
  options?: unknown[]
  literal?: unknown
}

export function toJsonSchema(schema: v.GenericSchema): JsonSchema {
  const x = schema as AnySchema
  if (x.pipe) {
    const [base, ...actions] = x.pipe
    const out = toJsonSchema(base as v.GenericSchema)
    for (const action of actions) {
      const a = action as { type: string; requirement?: unknown; message?: unknown }
      if (a.type === 'transform') break
      applyAction(out, a)
    }
    return out
  }
  switch (x.type) {
    case 'string':
      return { type: 'string' }
    case 'number':
      return { type: 'number' }
    case 'boolean':
      return { type: 'boolean' }
    case 'unknown':
      return {}
    case 'literal':
      return { const: x.literal }
    case 'picklist':
      return { enum: x.options }
    case 'nullable': {
      const inner = toJsonSchema(x.wrapped!)
      return { anyOf: [inner, { type: 'null' }] }
    }
    case 'optional': {
      const inner = toJsonSchema(x.wrapped!)
      const fallback = (x as unknown as { default?: unknown }).default
      return fallback === undefined || typeof fallback === 'function' ? inner : { ...inner, default: fallback }
    }
    case 'object':
    case 'strict_object': {
      const entries = Object.entries(x.entries!)
      return {
        type: 'object',
        properties: Object.fromEntries(entries.map(([k, e]) => [k, toJsonSchema(e)])),
        required: entries.filter(([, e]) => e.type !== 'optional').map(([k]) => k),
        ...(x.type === 'strict_object' ? { additionalProperties: false } : {}),
      }
    }
    case 'array':
      return { type: 'array', items: toJsonSchema(x.item!) }
    case 'record':
      return { type: 'object', additionalProperties: toJsonSchema(x.value!) }
    case 'union':
      return { anyOf: (x.options as v.GenericSchema[]).map(toJsonSchema) }
    default:
      throw new Error(`openapi: no JSON Schema mapping for valibot schema type ${x.type}`)
  }
}

function applyAction(out: JsonSchema, a: { type: string; requirement?: unknown }) {
  const isString = out.type === 'string'
  switch (a.type) {
    case 'min_length':
      out[isString ? 'minLength' : 'minItems'] = a.requirement
      break
    case 'max_length':
      out[isString ? 'maxLength' : 'maxItems'] = a.requirement
      break
    case 'min_value':
      out.minimum = a.requirement
      break
    case 'max_value':
      out.maximum = a.requirement
      break
    case 'integer':
      out.type = 'integer'
      break
    case 'regex':
      out.pattern = (a.requirement as RegExp).source
      break
    case 'email':
      out.format = 'email'
      break
    case 'uuid':
      out.format = 'uuid'
      break
    case 'url':
      out.format = 'uri'
      break
    // `check` actions (custom rules) have no JSON Schema form; their messages appear in 400 responses.
  }
}

type Method = 'get' | 'post' | 'patch' | 'delete'
interface Operation {
  method: Method
  path: string
  summary: string
  role: 'public' | 'read' | 'write' | 'admin'
  query?: v.GenericSchema
  body?: v.GenericSchema
  status?: 200 | 201 | 204 | 503
  response?: v.GenericSchema
  description?: string
}

const HISTORY_ORDER = 'Oldest first (version order) unless order=desc.'

/** The demo application's routes (demo.enabled only). */
const DEMO_OPERATIONS: Operation[] = [
  ...(['customers', 'products', 'orders'] as const).flatMap((r): Operation[] => {
    const schemas: Record<typeof r, [v.GenericSchema, v.GenericSchema, v.GenericSchema]> = {
      customers: [s.CustomerCreate, s.CustomerPatch, s.Customer],
      products: [s.ProductCreate, s.ProductPatch, s.Product],
      orders: [s.OrderCreate, s.OrderPatch, s.OrderResource],
    }
    const [create, patch, resource] = schemas[r]
    return [
      { method: 'get', path: `/${r}`, summary: `list ${r} (id order, cursor pagination)`, role: 'read', query: s.ListQuery, response: s.page(resource) },
      { method: 'post', path: `/${r}`, summary: `create one of ${r}`, role: 'write', body: create, status: 201, response: resource },
      { method: 'get', path: `/${r}/{id}`, summary: `read one of ${r}`, role: 'read', response: resource },
      { method: 'patch', path: `/${r}/{id}`, summary: `change some fields of one of ${r}`, role: 'write', body: patch, response: resource },
      { method: 'delete', path: `/${r}/{id}`, summary: `delete one of ${r} (X-Reason required when http.requireDeleteReason)`, role: 'write', status: 204 },
    ]
  }),
  { method: 'post', path: '/orders/{id}/status', summary: 'move an order along PLACED → PAYMENT_CONFIRMED → SHIPPED → DELIVERED, or CANCELLED before DELIVERED (409 otherwise)', role: 'write', body: s.StatusChange, response: s.OrderResource },
]

const TABLE = 'a tracked table by its qualified name: `orders` (schema public), `app.orders`, `app."LineItems"` (URL-encoded: `app.%22LineItems%22`)'
const ID = 'the aggregate id: the primary key value as text; a composite key is its columns in key order, each with `%` → `%25` and `:` → `%3A`, joined by `:`'

const OPERATIONS: Operation[] = [
  { method: 'get', path: '/history', summary: 'audit search across tracked tables', role: 'read', query: s.AuditQuery, response: s.page(s.HistoryItem), description: 'Oldest first (occurredAt, then event id) unless order=desc.' },
  { method: 'get', path: '/history/{table}/{id}', summary: 'the events of one aggregate', role: 'read', query: s.HistoryQuery, response: s.page(s.HistoryItem), description: HISTORY_ORDER },
  { method: 'get', path: '/{table}/{id}/history', summary: 'same as /history/{table}/{id}', role: 'read', query: s.HistoryQuery, response: s.page(s.HistoryItem), description: HISTORY_ORDER },
  { method: 'get', path: '/history/{table}/{id}/at', summary: 'the row as it was at ts (404 before it existed; deleted: true with the last image after deletion)', role: 'read', query: s.AtQuery, response: s.AtState },
  { method: 'get', path: '/state/{table}/{id}', summary: 'the latest state of one aggregate from the read model: row, version, deleted (404 before its first event was consumed)', role: 'read', response: s.StateView, description: 'One indexed lookup, whatever the size of the history. row is the last image (after deletion: the image before it, with deleted: true); null for an aggregate that has only application events.' },
  { method: 'post', path: '/events', summary: 'record an application event (cdc.emit): same envelope (op "m", payload in data), version sequence and who/why as row changes', role: 'write', body: s.EventCreate, status: 201, response: s.EventCreated, description: 'capture.mode logical: 201 once the relay appended the event, 202 with id and version null if it has not within 10 s. aggregate.type must be a consumed table; a tracked table\'s aggregate must have history (404 otherwise). data: at most http.maxEventPayloadBytes (413), field names without "." or leading "$", no arrays directly in arrays.' },
  { method: 'get', path: '/events/{id}/outcome', summary: 'what happened to an event in the consumer: stored, duplicate, parked, dead-lettered, redriven (oldest first)', role: 'read', response: s.EventOutcome },
  { method: 'get', path: '/dlq', summary: 'dead-lettered messages', role: 'admin', query: s.DlqQuery, response: s.page(s.DlqEntrySchema) },
  { method: 'post', path: '/dlq/redrive', summary: 'republish dead-lettered messages to their topics (a dry run unless dryRun is false)', role: 'admin', body: s.RedriveRequest, response: s.RedriveResultSchema },
  { method: 'post', path: '/dlq/discard', summary: "give up on an aggregate's dead head (with a reason, audited) and release its parked followers", role: 'admin', body: s.DiscardRequestSchema, response: s.DiscardResultSchema },
  { method: 'get', path: '/healthz', summary: 'liveness', role: 'public', response: s.Health },
  { method: 'get', path: '/readyz', summary: 'PostgreSQL, Kafka and MongoDB reachable (503 otherwise)', role: 'public', response: s.Readiness },
  { method: 'get', path: '/metrics', summary: 'Prometheus metrics (text)', role: 'read' },
  { method: 'get', path: '/openapi.json', summary: 'this document', role: 'public' },
]

const json = (schema: v.GenericSchema, type = 'application/json') => ({ content: { [type]: { schema: toJsonSchema(schema) } } })

function parameters(op: Operation) {
  const generic = /^\/(history|events|state|\{table\})\//.test(op.path)
  const path = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
    name: m[1],
    in: 'path',
    required: true,
    schema: m[1] === 'id' && !generic ? toJsonSchema(s.IdParam.entries.id) : { type: 'string' },
    ...(m[1] === 'table' ? { description: TABLE } : m[1] === 'id' && op.path.includes('{table}') ? { description: ID } : {}),
  }))
  const query = op.query
    ? Object.entries((op.query as unknown as { entries: Record<string, v.GenericSchema> }).entries).map(([name, e]) => ({
        name,
        in: 'query',
        required: e.type !== 'optional',
        schema: toJsonSchema(e),
      }))
    : []
  const headers = op.method === 'get' ? [] : [
    { name: 'X-Actor', in: 'header', required: false, schema: { type: 'string', maxLength: 200 }, description: 'who (used when no tokens are configured)' },
    { name: 'X-Reason', in: 'header', required: false, schema: { type: 'string', maxLength: 10000 }, description: 'why' },
    {
      name: 'X-Causation-Id', in: 'header', required: false,
      schema: { type: 'string', pattern: '^[A-Za-z0-9._:@/+=-]{1,200}$' },
      description: "the command or event that caused this write (the events' causationId; 400 when malformed)",
    },
  ]
  return [...path, ...query, ...headers, { name: 'X-Request-Id', in: 'header', required: false, schema: { type: 'string', maxLength: 200 } }]
}

export function openApiDocument(config: Config) {
  const secured = config.http.tokens.length > 0
  const paths: Record<string, Record<string, unknown>> = {}
  for (const op of config.demo.enabled ? [...DEMO_OPERATIONS, ...OPERATIONS] : OPERATIONS) {
    const status = op.status ?? 200
    ;(paths[op.path] ??= {})[op.method] = {
      summary: op.summary,
      ...(op.description ? { description: op.description } : {}),
      ...(secured && op.role !== 'public' ? { security: [{ bearer: [] }], 'x-role': op.role } : { security: [] }),
      parameters: parameters(op),
      ...(op.body ? { requestBody: { required: true, ...json(op.body) } } : {}),
      responses: {
        [status]: { description: 'success', ...(op.response ? json(op.response) : {}) },
        default: { description: 'a problem (RFC 9457)', ...json(s.Problem, 'application/problem+json') },
      },
    }
  }
  return {
    openapi: '3.1.0',
    info: { title: 'cdc', version: pkg.version, description: config.demo.enabled ? 'History of every tracked table, the demo application (CRUD), DLQ admin.' : 'History of every tracked table, application events, DLQ admin.' },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    ...(secured ? { security: [{ bearer: [] }] } : {}),
    paths,
  }
}
