// The durable record of redriven DLQ entries: `cdc_dlq_redriven`, keyed by DLQ position (`<dlq topic>:<partition>:
// <offset>`). Written after the republish was acknowledged: a crash in between redrives that entry again on the next
// run, which is harmless (the consumer skips an event id it already stored), whereas recording first could lose it.
import type { Store } from '../clients/mongo.ts'
import { REDRIVEN_COLLECTION } from '../consume/dlq.ts'

export interface RedrivenDoc {
  [field: string]: unknown
  _id: string
  dlqTopic: string
  at: string
  eventId: string | null
}

export const dlqPosition = (topic: string, partition: number, offset: string) => `${topic}:${partition}:${offset}`

export async function redrivenPositions(store: Store, dlqTopics: string[]): Promise<Set<string>> {
  const docs = await store.collection<RedrivenDoc>(REDRIVEN_COLLECTION).find({ dlqTopic: { $in: dlqTopics } }, { projection: { _id: 1 } })
  return new Set(docs.map((d) => d._id))
}

export async function recordRedriven(store: Store, entries: { position: string; dlqTopic: string; eventId: string | null }[]) {
  if (entries.length === 0) return
  const at = new Date().toISOString()
  await store.collection(REDRIVEN_COLLECTION).bulkWrite(
    entries.map((e) => ({
      updateOne: { filter: { _id: e.position }, update: { $set: { dlqTopic: e.dlqTopic, at, eventId: e.eventId } }, upsert: true },
    })),
  )
}
