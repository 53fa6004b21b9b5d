// Turns a Kafka message into an event, or says why it cannot be one (a permanent failure: the message goes to the DLQ).
import * as v from 'valibot'
import { EventSchema, type CdcEvent } from '../events.ts'
import type { InMessage } from '../clients/kafka.ts'

export type Decoded = { ok: true; event: CdcEvent } | { ok: false; error: string }

/** Far above any row the capture produces; a larger value (only possible on a broker with a raised limit) is refused. */
export const MAX_EVENT_BYTES = 8 * 1024 * 1024

/**
 * Nesting allowed in an event. MongoDB refuses documents nested deeper than 100 levels, and FerretDB on PostgreSQL
 * takes seconds per document at a few thousand (18 s at 5,000, and beyond its time limit at 20,000, burning a core
 * meanwhile): deeper events are refused here, before they reach the store.
 */
export const MAX_DEPTH = 90

/** The nesting depth of a parsed JSON value, without recursion (the value may be as deep as the parser allowed). */
export function depthOf(value: unknown): number {
  let max = 0
  const stack: [unknown, number][] = [[value, 0]]
  while (stack.length > 0) {
    const [v, d] = stack.pop()!
    if (v === null || typeof v !== 'object') continue
    if (d + 1 > max) max = d + 1
    if (max > MAX_DEPTH) return max
    for (const child of Object.values(v)) stack.push([child, d + 1])
  }
  return max
}

export function decode(message: InMessage, tables: ReadonlySet<string>): Decoded {
  if (!message.value || message.value.length === 0) return { ok: false, error: 'empty message value' }
  if (message.value.length > MAX_EVENT_BYTES) return { ok: false, error: `too large: ${message.value.length} bytes (limit ${MAX_EVENT_BYTES})` }
  let json: unknown
  try {
    json = JSON.parse(message.value.toString('utf8'))
  } catch (error) {
    return { ok: false, error: `undecodable JSON: ${(error as Error).message}` }
  }
  if (depthOf(json) > MAX_DEPTH) return { ok: false, error: `too deeply nested: more than ${MAX_DEPTH} levels` }
  const result = v.safeParse(EventSchema, json)
  if (!result.success) {
    const issues = result.issues.slice(0, 3).map((i) => `${v.getDotPath(i) ?? '(root)'}: ${i.message}`)
    return { ok: false, error: `invalid envelope: ${issues.join('; ')}` }
  }
  const event = result.output
  // The aggregate type names the collections: only consumed tables are allowed.
  if (!tables.has(event.aggregate.type)) {
    return { ok: false, error: `aggregate type ${JSON.stringify(event.aggregate.type)} is not a consumed table` }
  }
  // Per-aggregate order rests on the key: a message keyed otherwise may have overtaken its predecessors.
  if (message.key !== null && message.key !== event.aggregate.id) {
    return { ok: false, error: `message key ${JSON.stringify(message.key)} is not the aggregate id ${JSON.stringify(event.aggregate.id)}` }
  }
  return { ok: true, event }
}
