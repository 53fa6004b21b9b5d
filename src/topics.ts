// Where events go: one function decides the topic of an event, so relay, consumer and redrive agree.
import type { Config } from './config.ts'

/** Topic of an event: a per-type override from kafka.topics, else kafka.topicTemplate with {table} and {type}. */
export function topicFor(config: Config, table: string, type: string): string {
  return config.kafka.topics[type] ?? config.kafka.topicTemplate.replaceAll('{table}', table).replaceAll('{type}', type)
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

/** Tables the consumer handles: consume.tables, or every tracked table. */
export function consumedTables(config: Config): string[] {
  return config.consume.tables.length > 0 ? config.consume.tables : config.capture.tracked
}
