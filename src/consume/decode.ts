// Turns a Kafka message into an event, or says why it cannot be one (a permanent failure: the message goes to the DLQ).
import * as v from 'valibot'
import { EventSchema, type CdcEvent } from '../events.ts'
import type { InMessage } from '../clients/kafka.ts'

export type Decoded = { ok: true; event: CdcEvent } | { ok: false; error: string }

/** Far above any row the capture produces; a larger value (only possible on a broker with a raised limit) is refused. */
export const MAX_EVENT_BYTES = 8 * 1024 * 1024

export function decode(message: InMessage, tables: ReadonlySet<string>): Decoded {
  if (!message.value || message.value.length === 0) return { ok: false, error: 'empty message value' }
  if (message.value.length > MAX_EVENT_BYTES) return { ok: false, error: `too large: ${message.value.length} bytes (limit ${MAX_EVENT_BYTES})` }
  let json: unknown
  try {
    json = JSON.parse(message.value.toString('utf8'))
  } catch (error) {
    return { ok: false, error: `undecodable JSON: ${(error as Error).message}` }
  }
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
