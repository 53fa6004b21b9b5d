// Every request and response body of the API: the single source for validation (middleware/validate.ts) and for
// /openapi.json (openapi.ts). Requests are strict: unknown fields are errors, not silently dropped.
import * as v from 'valibot'
import { EventSchema } from '../events.ts'

// ---------------------------------------------------------------- building blocks

/** Text PostgreSQL can store as given: well-formed UTF-16 (no lone surrogates), no NUL or other control characters. */
const text = (max: number) =>
  v.pipe(
    v.string(),
    v.maxLength(max),
    v.check((s) => s.isWellFormed() && !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(s), 'contains control characters or invalid Unicode'),
  )
const requiredText = (max: number) => v.pipe(text(max), v.check((s) => s.trim().length > 0, 'must not be blank'))

/** bigint identity values; JSON numbers stay exact up to 2^53. */
export const Id = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(Number.MAX_SAFE_INTEGER))
/** numeric(12,2): at most 10 integer digits and 2 decimals, never negative. */
const Money = v.pipe(
  v.number(),
  v.minValue(0),
  v.maxValue(9_999_999_999.99),
  v.check((n) => Math.abs(Math.round(n * 100) - n * 100) < 1e-6, 'at most 2 decimal places'),
)
const Email = v.pipe(v.string(), v.maxLength(320), v.email())
const Phone = v.pipe(v.string(), v.maxLength(40), v.regex(/^\+?[0-9 ()./-]{3,40}$/, 'a phone number (digits, spaces, + ( ) . / -)'))
const Timestamp = v.string()

export const ORDER_STATUSES = ['PLACED', 'PAYMENT_CONFIRMED', 'SHIPPED', 'DELIVERED', 'CANCELLED'] as const
export const OrderStatus = v.picklist(ORDER_STATUSES)

// ---------------------------------------------------------------- path and query parameters

export const IdParam = v.strictObject({
  id: v.pipe(v.string(), v.regex(/^[1-9][0-9]{0,15}$/, 'a positive integer id'), v.transform(Number), Id),
})

/** Page size: at least 1; larger than http.maxPageSize is capped, not refused. */
const Limit = v.pipe(v.string(), v.regex(/^[0-9]{1,9}$/, 'a positive integer'), v.transform(Number), v.minValue(1))
const Cursor = v.pipe(v.string(), v.maxLength(500))

export const ListQuery = v.strictObject({ limit: v.optional(Limit), cursor: v.optional(Cursor) })

/** ISO-8601 instant; microseconds are kept (see history.ts toMicros). */
export const Instant = v.pipe(
  v.string(),
  v.regex(
    /^\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d:?\d\d)?)?$/,
    'an ISO-8601 timestamp, e.g. 2026-11-22T19:33:00.123456Z',
  ),
)
const Name = v.pipe(v.string(), v.minLength(1), v.maxLength(200))
const Order = v.picklist(['asc', 'desc'])

export const HistoryQuery = v.strictObject({
  from: v.optional(Instant),
  to: v.optional(Instant),
  type: v.optional(v.pipe(v.string(), v.regex(/^[A-Z][A-Za-z0-9]{0,99}$/, 'a PascalCase event type'))),
  actor: v.optional(Name),
  field: v.optional(v.pipe(v.string(), v.regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a column name'))),
  order: v.optional(Order),
  limit: v.optional(Limit),
  cursor: v.optional(Cursor),
})

/** A table by its qualified name (`orders`, `app.orders`, `app."LineItems"`; URL-encoded in paths). */
const TableParam = v.pipe(v.string(), v.minLength(1), v.maxLength(300))

export const AuditQuery = v.strictObject({
  table: v.optional(TableParam),
  actor: v.optional(Name),
  type: v.optional(v.pipe(v.string(), v.regex(/^[A-Z][A-Za-z0-9]{0,99}$/, 'a PascalCase event type'))),
  from: v.optional(Instant),
  to: v.optional(Instant),
  order: v.optional(Order),
  limit: v.optional(Limit),
  cursor: v.optional(Cursor),
})

export const AtQuery = v.strictObject({ ts: Instant })

export const HistoryParams = v.strictObject({
  table: TableParam,
  id: v.pipe(v.string(), v.minLength(1), v.maxLength(1000)),
})

// ---------------------------------------------------------------- customers

export const CustomerCreate = v.strictObject({
  name: requiredText(200),
  email: Email,
  address: v.optional(v.nullable(text(1000))),
  phone: v.optional(v.nullable(Phone)),
})
export const CustomerPatch = v.partial(CustomerCreate)
export const Customer = v.object({
  id: Id,
  name: v.string(),
  email: v.string(),
  address: v.nullable(v.string()),
  phone: v.nullable(v.string()),
  createdAt: Timestamp,
  updatedAt: Timestamp,
})

// ---------------------------------------------------------------- products

export const ProductCreate = v.strictObject({
  category: requiredText(100),
  name: requiredText(200),
  price: Money,
})
export const ProductPatch = v.partial(ProductCreate)
export const Product = v.object({ id: Id, category: v.string(), name: v.string(), price: v.number() })

// ---------------------------------------------------------------- orders

export const OrderCreate = v.strictObject({
  customerId: Id,
  shippingAddress: requiredText(1000),
  lines: v.pipe(
    v.array(v.strictObject({ productId: Id, quantity: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(100_000)) })),
    v.minLength(1),
    v.maxLength(500),
  ),
})
/** Only the shipping address changes by PATCH (before shipping); status moves through POST /orders/:id/status. */
export const OrderPatch = v.strictObject({ shippingAddress: v.optional(requiredText(1000)) })
export const StatusChange = v.strictObject({ status: OrderStatus })
export const OrderLine = v.object({ id: Id, productId: Id, quantity: v.number(), unitPrice: v.number() })
export const OrderResource = v.object({
  id: Id,
  customerId: Id,
  shippingAddress: v.string(),
  status: OrderStatus,
  total: v.number(),
  lines: v.array(OrderLine),
  createdAt: Timestamp,
  updatedAt: Timestamp,
})

export const page = <T extends v.GenericSchema>(item: T) =>
  v.object({ items: v.array(item), nextCursor: v.nullable(v.string()) })

// ---------------------------------------------------------------- history

export const HistoryItem = v.object({
  ...EventSchema.entries,
  storedAt: v.string(),
  kafka: v.object({ topic: v.string(), partition: v.number(), offset: v.union([v.string(), v.number()]) }),
})
export const AtState = v.object({
  aggregate: v.object({ type: v.string(), id: v.string() }),
  version: v.number(),
  deleted: v.boolean(),
  row: v.nullable(v.record(v.string(), v.unknown())),
})

export const StateView = v.object({
  ...AtState.entries,
  /** When the latest event of the aggregate happened, and its id. */
  occurredAt: v.string(),
  eventId: v.string(),
})

// ---------------------------------------------------------------- DLQ

const DlqFilterEntries = {
  topic: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9._-]{1,249}$/, 'a Kafka topic name'))),
  aggregate: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(1000))),
  since: v.optional(Instant),
  error: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(500))),
}
export const DlqQuery = v.strictObject({
  ...DlqFilterEntries,
  /** Also list entries already redriven. */
  includeRedriven: v.optional(v.pipe(v.picklist(['true', 'false']), v.transform((s) => s === 'true'))),
  limit: v.optional(Limit),
  cursor: v.optional(Cursor),
})
export const RedriveRequest = v.strictObject({
  ...DlqFilterEntries,
  limit: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(100_000))),
  // Omitted means a dry run: only an explicit false changes anything.
  dryRun: v.optional(v.boolean(), true),
})
export const DiscardRequestSchema = v.strictObject({
  /** The DLQ entry, as `GET /dlq` lists it: its .dlq topic and position. */
  topic: v.pipe(v.string(), v.regex(/^[A-Za-z0-9._-]{1,249}$/, 'a Kafka topic name')),
  partition: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(1_000_000)),
  offset: v.pipe(v.string(), v.regex(/^[0-9]{1,19}$/, 'a Kafka offset')),
  /** Why: kept in the outcome log and the aggregate's history. */
  reason: requiredText(2000),
})
export const DiscardResultSchema = v.object({
  discarded: v.object({ topic: v.string(), partition: v.number(), offset: v.string(), key: v.nullable(v.string()), eventId: v.nullable(v.string()) }),
  record: v.nullable(v.object({ table: v.string(), version: v.number(), eventId: v.string() })),
  released: v.number(),
})
export const DlqEntrySchema = v.object({
  topic: v.string(),
  partition: v.number(),
  offset: v.string(),
  key: v.nullable(v.string()),
  error: v.string(),
  origin: v.object({ topic: v.string(), partition: v.number(), offset: v.string(), group: v.string() }),
  at: v.string(),
  redriveCount: v.number(),
  eventId: v.nullable(v.string()),
  eventType: v.nullable(v.string()),
  parked: v.boolean(),
  redriven: v.boolean(),
  outcomeUrl: v.nullable(v.string()),
})
export const RedriveResultSchema = v.object({
  redriven: v.number(),
  kept: v.number(),
  dryRun: v.boolean(),
  items: v.array(
    v.object({
      topic: v.string(),
      partition: v.number(),
      offset: v.string(),
      key: v.nullable(v.string()),
      eventId: v.nullable(v.string()),
      redriveCount: v.number(),
      parked: v.boolean(),
      action: v.picklist(['redriven', 'would-redrive', 'kept-max-redrives', 'claimed-elsewhere']),
    }),
  ),
})

// ---------------------------------------------------------------- application events and outcomes

/** Where a payload could not be stored as given in the MongoDB history (DESIGN.md's subset), or null when it can. */
function unstorable(value: unknown, path: string, depth = 0, inArray = false): string | null {
  if (depth > 32) return `${path}: nested deeper than 32 levels`
  if (typeof value === 'string') return /\u0000/.test(value) || !value.isWellFormed() ? `${path}: contains NUL or invalid Unicode` : null
  if (Array.isArray(value)) {
    if (inArray) return `${path}: an array directly inside an array`
    for (const [i, item] of value.entries()) {
      const problem = unstorable(item, `${path}.${i}`, depth + 1, true)
      if (problem) return problem
    }
    return null
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      if (key === '' || key.includes('.') || key.startsWith('$') || /\u0000/.test(key)) return `${path}: field name ${JSON.stringify(key)} (no "", ".", leading "$" or NUL)`
      const problem = unstorable(item, `${path}.${key}`, depth + 1)
      if (problem) return problem
    }
  }
  return null
}

/** POST /events. The aggregate type must also be a consumed table (checked against the config by the route). */
export const EventCreate = v.strictObject({
  /** PascalCase; the convention is past tense (CustomerContacted, InvoiceSent). */
  type: v.pipe(v.string(), v.regex(/^[A-Z][A-Za-z0-9]{0,99}$/, 'a PascalCase event type, e.g. CustomerContacted')),
  aggregate: v.strictObject({
    type: v.pipe(v.string(), v.minLength(1), v.maxLength(300, 'a consumed table\'s name')),
    id: v.pipe(requiredText(200), v.check((s) => s === s.trim(), 'no leading or trailing spaces')),
  }),
  /** The payload (envelope `data`); size limit http.maxEventPayloadBytes (413). */
  data: v.optional(
    v.pipe(
      // Not v.record: it would turn an array into an object.
      v.unknown(),
      v.check((d) => typeof d === 'object' && d !== null && !Array.isArray(d), 'a JSON object'),
      v.check((d) => unstorable(d, 'data') === null, (issue) => unstorable(issue.input, 'data') ?? 'not storable'),
    ),
    {},
  ),
})
export const EventCreated = v.object({
  /** null (with status 202) only in capture.mode "logical" while the relay has not appended the event yet. */
  id: v.nullable(v.string()),
  aggregate: v.object({ type: v.string(), id: v.string() }),
  version: v.nullable(v.number()),
  type: v.string(),
})
export const EventIdParam = v.strictObject({ id: requiredText(200) })
export const Outcome = v.object({
  outcome: v.picklist(['stored', 'duplicate', 'parked', 'dead-lettered', 'redriven', 'discarded']),
  at: v.string(),
  error: v.optional(v.string()),
  topic: v.string(),
  partition: v.number(),
  offset: v.string(),
  redriveCount: v.optional(v.number()),
  /** Who discarded it and why (outcome `discarded`). */
  actor: v.optional(v.string()),
  reason: v.optional(v.string()),
})
export const EventOutcome = v.object({ eventId: v.string(), outcomes: v.array(Outcome) })

// ---------------------------------------------------------------- ops and errors

export const Health = v.object({ status: v.literal('ok') })
const Check = v.object({ ok: v.boolean(), ms: v.number(), error: v.optional(v.string()) })
export const Readiness = v.object({
  status: v.picklist(['ready', 'unavailable']),
  checks: v.object({ postgres: Check, kafka: Check, mongo: Check }),
})
export const Problem = v.object({
  type: v.string(),
  title: v.string(),
  status: v.number(),
  detail: v.string(),
  instance: v.string(),
  requestId: v.string(),
  errors: v.optional(v.array(v.object({ path: v.string(), message: v.string() }))),
})
