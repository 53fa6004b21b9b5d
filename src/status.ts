// `cdc status`: what a newcomer runs right after `cdc track`. Per tracked table: capture mode, events captured, the
// last event's time, the relay backlog (outbox rows not yet in Kafka) and the consumer lag (messages in its topic
// that the consumer group has not committed). Each source is asked on its own: Kafka being down blanks only the lag.
import statusSql from '../sql/tracking/status.sql' with { type: 'text' }
import { messagesBehind } from './clients/kafka.ts'
import type { Runtime } from './runtime.ts'
import { perTypeTopics, tableTopicPattern, topicFor } from './topics.ts'

export interface TableStatus {
  table: string
  active: boolean
  mode: string
  key: string[]
  keySource: string
  trackedAt: string
  events: number
  lastEventAt: string | null
  relayBacklog: number
  /** null when Kafka could not be asked (the reason is in `problems`). */
  consumerLag: number | null
  topic: string
}

interface Row {
  aggregate_type: string
  mode: string
  active: boolean
  key_columns: string[]
  key_source: string
  tracked_at: string
  events: number
  last_event_at: string | null
  backlog: number
}

const KAFKA_WITHIN_MS = 5_000

export async function status(rt: Runtime): Promise<{ tables: TableStatus[]; problems: string[] }> {
  const problems: string[] = []
  const rows = await rt.db().query<Row>(statusSql)
  const tables = rows.map((r): TableStatus => ({
    table: r.aggregate_type,
    active: r.active,
    mode: r.mode,
    key: r.key_columns,
    keySource: r.key_source,
    trackedAt: r.tracked_at,
    events: r.events,
    lastEventAt: r.last_event_at,
    relayBacklog: r.backlog,
    consumerLag: null,
    // Under a {type} template: the template for the table, e.g. `customers.{type}.v1`.
    topic: topicFor(rt.config, r.aggregate_type, '{type}'),
  }))
  let topicList: Promise<string[]> | undefined
  const listed = () => (topicList ??= rt.kafka().listTopics())
  const lags = Promise.all(
    tables.map(async (t) => {
      try {
        // Per-type topics: the lag of every topic of the table that exists so far.
        const topics = perTypeTopics(rt.config) ? (await listed()).filter((name) => tableTopicPattern(rt.config, t.table).test(name)) : [t.topic]
        t.consumerLag = 0
        for (const topic of topics) {
          t.consumerLag += messagesBehind(await rt.kafka().lag(rt.config.consume.groupId, topic))
        }
      } catch (error) {
        // No topic yet: the relay has published nothing for this table, so the consumer has nothing to catch up on.
        if ((error as { type?: string }).type === 'UNKNOWN_TOPIC_OR_PARTITION' || /does not host this topic/.test((error as Error).message)) {
          t.consumerLag = 0
        } else throw error
      }
    }),
  )
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${KAFKA_WITHIN_MS} ms`)), KAFKA_WITHIN_MS)))
  await Promise.race([lags, late])
    .catch((error) => {
      for (const t of tables) t.consumerLag = null
      problems.push(`consumer lag unknown: Kafka: ${(error as Error).message}`)
    })
    .finally(() => clearTimeout(timer))
  return { tables, problems }
}

/** The status as a plain-text table (one line per table). */
export function formatStatus(s: { tables: TableStatus[]; problems: string[] }): string {
  if (s.tables.length === 0) return 'No tables are tracked. Track one with: cdc track <schema.table>'
  const head = ['TABLE', 'STATE', 'MODE', 'KEY', 'EVENTS', 'LAST EVENT', 'RELAY BACKLOG', 'CONSUMER LAG']
  const lines = s.tables.map((t) => [
    t.table,
    t.active ? 'tracked' : 'untracked',
    t.mode,
    `${t.key.join(', ')}${t.keySource === 'primary key' ? '' : ` (${t.keySource})`}`,
    String(t.events),
    t.lastEventAt ?? '-',
    String(t.relayBacklog),
    t.consumerLag === null ? '?' : String(t.consumerLag),
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)))
  const row = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()
  return [row(head), ...lines.map(row), ...s.problems.map((p) => `note: ${p}`)].join('\n')
}
