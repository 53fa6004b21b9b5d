// Where events go: one function decides the topic of an event, so relay, consumer and redrive agree.
import type { Config } from './config.ts'
import { canonicalName, storageNameOf } from './tables.ts'
import type { TrackedTable } from './tracked-set.ts'

/**
 * Topic of an event: a per-type override from kafka.topics, else kafka.topicTemplate with {type} and {table} (the
 * table's storage name: `app."LineItems"` → `app.LineItems`, see tables.ts).
 */
export function topicFor(config: Config, table: string, type: string): string {
  return config.kafka.topics[type] ?? config.kafka.topicTemplate.replaceAll('{table}', storageNameOf(table)).replaceAll('{type}', type)
}

/** Whether events of one table spread over several topics, one per event type (the template names `{type}`). */
export const perTypeTopics = (config: Config) => config.kafka.topicTemplate.includes('{type}')

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
/** An event type as config and events.ts accept it (PascalCase, no dots), so `<topic>.dlq` never matches. */
const TYPE_PATTERN = '[A-Z][A-Za-z0-9]{0,99}'

/** The topics of `table` under a `{type}` template, as a pattern (anchored): `{table}.{type}.v1` → /^orders\.[A-Z]…\.v1$/. */
export function tableTopicPattern(config: Config, table: string): RegExp {
  const parts = config.kafka.topicTemplate.split(/(\{table\}|\{type\})/)
  const source = parts.map((p) => (p === '{table}' ? escape(storageNameOf(table)) : p === '{type}' ? TYPE_PATTERN : escape(p))).join('')
  return new RegExp(`^${source}$`)
}

/**
 * Every topic the consumer reads: each consumed table's template topic plus the per-type overrides. Under a `{type}`
 * template a table's topics are made by the relay as each type first occurs, so they are found among `existing`
 * (the broker's topic list; callers pass it whenever perTypeTopics is true).
 */
export function consumedTopics(config: Config, tables: readonly string[], existing: readonly string[] = []): string[] {
  const topics = new Set<string>()
  if (perTypeTopics(config)) {
    const patterns = tables.map((t) => tableTopicPattern(config, t))
    for (const topic of existing) if (patterns.some((p) => p.test(topic))) topics.add(topic)
  } else {
    for (const table of tables) topics.add(topicFor(config, table, ''))
  }
  for (const topic of Object.values(config.kafka.topics)) topics.add(topic)
  return [...topics].sort()
}

/** consumedTopics with the broker's topic list read when the template needs it. */
export async function discoverTopics(config: Config, kafka: { listTopics(): Promise<string[]> }, tables: readonly string[]): Promise<string[]> {
  return consumedTopics(config, tables, perTypeTopics(config) ? await kafka.listTopics() : [])
}

/** The table whose template topic `topic` is (undefined for an override or an unknown topic). */
export function tableOfTopic(config: Config, tables: readonly string[], topic: string): string | undefined {
  return perTypeTopics(config) ? tables.find((t) => tableTopicPattern(config, t).test(topic)) : tables.find((t) => topicFor(config, t, '') === topic)
}

/**
 * Aggregate types the consumer handles (canonical names): consume.tables when set, else capture.tracked (what
 * migrate tracks, so a consumer started before migrate reads them already) plus every table in the tracked set,
 * untracked ones included (their last events may still be on the way, and their history stays).
 */
export function consumedTables(config: Config, tracked: readonly TrackedTable[]): string[] {
  if (config.consume.tables.length > 0) return config.consume.tables.map(canonicalName)
  return [...new Set([...config.capture.tracked, ...tracked.map((t) => t.aggregateType)])]
}
