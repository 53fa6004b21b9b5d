// The event envelope (the Kafka value, and the body of each history document): the only place its shape is defined.
import * as v from 'valibot'

const isoMicros = v.pipe(
  v.string(),
  v.regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$/, 'an ISO-8601 UTC timestamp'),
)
const nullableText = v.nullable(v.pipe(v.string(), v.maxLength(10_000)))
const row = v.nullable(v.record(v.string(), v.unknown()))

export const EventSchema = v.object({
  id: v.pipe(v.string(), v.uuid()),
  type: v.pipe(v.string(), v.regex(/^[A-Z][A-Za-z0-9]{0,99}$/, 'a PascalCase event type')),
  op: v.picklist(['c', 'u', 'd', 'r', 'm']),
  aggregate: v.object({
    /** The table's canonical name (src/tables.ts): `orders`, `app.orders`, `app."LineItems"`. */
    type: v.pipe(v.string(), v.minLength(1), v.maxLength(300)),
    id: v.pipe(v.string(), v.minLength(1), v.maxLength(1000)),
  }),
  version: v.pipe(v.number(), v.integer(), v.minValue(1)),
  tx: v.object({
    id: v.pipe(v.string(), v.regex(/^\d+$/)),
    index: v.pipe(v.number(), v.integer(), v.minValue(0)),
    size: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
  }),
  occurredAt: isoMicros,
  actor: v.object({
    id: v.pipe(v.string(), v.maxLength(200)),
    source: v.picklist(['api', 'sql', 'snapshot']),
  }),
  reason: nullableText,
  correlationId: nullableText,
  causationId: nullableText,
  changes: v.array(v.object({ path: v.string(), before: v.unknown(), after: v.unknown() })),
  before: row,
  after: row,
  /** Payload of an application-level event (op "m"). */
  data: v.optional(v.unknown()),
  schema: v.literal(1),
})

export type CdcEvent = v.InferOutput<typeof EventSchema>

/** Kafka headers every published event carries. */
export const EventHeaders = {
  id: 'cdc-event-id',
  type: 'cdc-event-type',
  version: 'cdc-version',
} as const

/** Headers a dead-lettered message gains on top of its original ones. */
export const DlqHeaders = {
  error: 'cdc-dlq-error',
  topic: 'cdc-dlq-topic',
  partition: 'cdc-dlq-partition',
  offset: 'cdc-dlq-offset',
  group: 'cdc-dlq-group',
  at: 'cdc-dlq-at',
  redriveCount: 'cdc-redrive-count',
  /** "true" on a message that did not fail itself but waits behind its aggregate's failed one (order kept). */
  parked: 'cdc-dlq-parked',
  /**
   * On a DLQ copy whose original did not fit the DLQ topic: what was replaced ("value", "value,headers",
   * "value,headers,key"); the value is then a JSON reference to the original's topic, partition and offset.
   */
  reference: 'cdc-dlq-reference',
  /** Set by redrive on the republished message: the DLQ position it came from (`<dlq topic>:<partition>:<offset>`). */
  redriveId: 'cdc-redrive-id',
} as const

export function dlqTopic(topic: string) {
  return `${topic}.dlq`
}
