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

/** Every topic the consumer reads: each consumed table's template topic plus the per-type overrides. */
export function consumedTopics(config: Config, tables: readonly string[]): string[] {
  const topics = new Set<string>()
  for (const table of tables) {
    if (!config.kafka.topicTemplate.includes('{type}')) topics.add(topicFor(config, table, ''))
  }
  for (const topic of Object.values(config.kafka.topics)) topics.add(topic)
  return [...topics]
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
