// Helpers for the consumer tests: valid envelopes (per src/events.ts), publishing them like the relay does, and
// reading back what the consumer wrote.
import type { InMessage, OutMessage } from '../../src/clients/kafka.ts'
import { connectMongo, healingStore, type Doc, type Store } from '../../src/clients/mongo.ts'
import { EventHeaders, type CdcEvent } from '../../src/events.ts'
import { topicFor } from '../../src/topics.ts'
import type { TestEnv } from '../support/env.ts'

let clock = Date.parse('2026-11-22T10:00:00Z')

/** Event `version` of aggregate `table`/`id`: a create for version 1, an update after. */
export function event(table: string, id: string, version: number, overrides: Partial<CdcEvent> = {}): CdcEvent {
  const micros = String((clock += 1) % 1000).padStart(3, '0')
  const occurredAt = new Date(clock).toISOString().replace('Z', `${micros}Z`)
  const op = version === 1 ? 'c' : 'u'
  const name = table.charAt(0).toUpperCase() + table.slice(1)
  return {
    id: Bun.randomUUIDv7(),
    type: `${name}${op === 'c' ? 'Created' : 'Updated'}`,
    op,
    aggregate: { type: table, id },
    version,
    tx: { id: String(1000 + version), index: 0, size: 1 },
    occurredAt,
    actor: { id: 'tester', source: 'sql' },
    reason: null,
    correlationId: null,
    causationId: null,
    changes: [{ path: 'name', before: version === 1 ? null : `v${version - 1}`, after: `v${version}` }],
    before: version === 1 ? null : { id, name: `v${version - 1}` },
    after: { id, name: `v${version}` },
    schema: 1,
    ...overrides,
  }
}

/** Versions from..to of one aggregate. */
export const versions = (table: string, id: string, from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => event(table, id, from + i))

export function message(env: TestEnv, e: CdcEvent, topic = topicFor(env.config, e.aggregate.type, e.type)): OutMessage {
  return {
    topic,
    key: e.aggregate.id,
    value: JSON.stringify(e),
    headers: { [EventHeaders.id]: e.id, [EventHeaders.type]: e.type, [EventHeaders.version]: String(e.version) },
  }
}

export async function ensureTopics(env: TestEnv, topics: string[]) {
  await env.rt.kafka().ensureTopics(topics.map((topic) => ({ topic, partitions: env.config.kafka.partitions, replicationFactor: 1 })))
}

export async function publish(env: TestEnv, messages: OutMessage[]) {
  const producer = await env.rt.kafka().producer()
  try {
    await producer.send(messages)
  } finally {
    await producer.disconnect()
  }
}

const stores = new Map<string, Store>()

/** A store for assertions that survives a MongoDB restart (rt.mongo()'s client would not, see healingStore). */
export function storeOf(env: TestEnv): Store {
  let store = stores.get(env.tag)
  if (!store) stores.set(env.tag, (store = healingStore(() => connectMongo({ url: env.config.mongo.url, database: env.config.mongo.database }))))
  return store
}

export async function history(env: TestEnv, table: string, filter: Doc = {}) {
  const store = storeOf(env)
  return store.collection(`${table}_history`).find(filter, { sort: { 'aggregate.id': 1, version: 1 } })
}

export async function stateOf(env: TestEnv, table: string, id: string) {
  const store = storeOf(env)
  return store.collection(`${table}_state`).findOne({ _id: id })
}

/** Every message of a topic (one-shot reader). */
export async function readAll(env: TestEnv, topic: string): Promise<InMessage[]> {
  const { readTopics } = await import('../../src/redrive/read.ts')
  return readTopics(env.rt, [topic])
}
