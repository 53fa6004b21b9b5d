// A DLQ message as the admin sees it: where it was, why it failed, where it came from.
import type { InMessage } from '../clients/kafka.ts'
import { DlqHeaders, EventHeaders } from '../events.ts'
import { dlqPosition } from './ledger.ts'

export interface DlqEntry {
  /** The DLQ topic and position. */
  topic: string
  partition: number
  offset: string
  key: string | null
  error: string
  origin: { topic: string; partition: number; offset: string; group: string }
  at: string
  redriveCount: number
  eventId: string | null
  eventType: string | null
  /** Waits behind an earlier failed message of the same aggregate (it did not fail itself). */
  parked: boolean
  /** Already republished by a redrive. */
  redriven: boolean
  /** `GET` this for what happened to the event (null when the message names no event id). */
  outcomeUrl: string | null
}

export function toEntry(m: InMessage, redriven: ReadonlySet<string>): DlqEntry {
  const h = m.headers
  const eventId = h[EventHeaders.id] ?? eventIdOf(m.value)
  return {
    topic: m.topic,
    partition: m.partition,
    offset: m.offset,
    key: m.key,
    error: h[DlqHeaders.error] ?? '',
    origin: {
      topic: h[DlqHeaders.topic] ?? m.topic.replace(/\.dlq$/, ''),
      partition: Number(h[DlqHeaders.partition] ?? -1),
      offset: h[DlqHeaders.offset] ?? '',
      group: h[DlqHeaders.group] ?? '',
    },
    at: h[DlqHeaders.at] ?? new Date(Number(m.timestamp)).toISOString(),
    redriveCount: Number(h[DlqHeaders.redriveCount] ?? 0) || 0,
    eventId,
    eventType: h[EventHeaders.type] ?? null,
    parked: h[DlqHeaders.parked] === 'true',
    redriven: redriven.has(dlqPosition(m.topic, m.partition, m.offset)),
    outcomeUrl: eventId === null ? null : `/events/${encodeURIComponent(eventId)}/outcome`,
  }
}

/** Best effort for messages published without headers: the id inside the JSON, if it parses. */
function eventIdOf(value: Buffer | null): string | null {
  try {
    const id = (JSON.parse(value?.toString('utf8') ?? '') as { id?: unknown }).id
    return typeof id === 'string' ? id : null
  } catch {
    return null
  }
}
