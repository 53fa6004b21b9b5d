// `<table>_history`: one document per event, `_id` = event id, so a redelivered event is a duplicate key (skipped).
import type { InMessage } from '../clients/kafka.ts'
import type { Doc, IndexSpec, Store } from '../clients/mongo.ts'
import type { CdcEvent } from '../events.ts'
import { storageNameOf } from '../tables.ts'

/** The history collection of a table by its canonical name (`app."LineItems"` → `app.LineItems_history`). */
export const historyCollection = (table: string) => `${storageNameOf(table)}_history`

export const HISTORY_INDEXES: IndexSpec[] = [
  { key: { 'aggregate.id': 1, version: 1 }, name: 'aggregate_version', unique: true },
  { key: { occurredAt: 1 }, name: 'occurred_at' },
  { key: { 'actor.id': 1, occurredAt: 1 }, name: 'actor_occurred_at' },
  { key: { type: 1, occurredAt: 1 }, name: 'type_occurred_at' },
]

export type HistoryDoc = CdcEvent & { _id: string; storedAt: string; kafka: { topic: string; partition: number; offset: string } }

export function historyDoc(event: CdcEvent, message: InMessage, storedAt: string): HistoryDoc & Doc {
  return {
    _id: event.id,
    ...event,
    storedAt,
    kafka: { topic: message.topic, partition: message.partition, offset: message.offset },
  }
}

/** Contiguous versions of one aggregate after `after`, ascending, read from its history (the slow path of gaps). */
export async function historyAfter(store: Store, table: string, aggregateId: string, after: number): Promise<HistoryDoc[]> {
  const out: HistoryDoc[] = []
  const page = 1000
  for (let from = after; ; ) {
    const docs = await store
      .collection<HistoryDoc & Doc>(historyCollection(table))
      .find({ 'aggregate.id': aggregateId, version: { $gt: from } }, { sort: { version: 1 }, limit: page })
    out.push(...docs)
    if (docs.length < page) return out
    from = docs.at(-1)!.version
  }
}
