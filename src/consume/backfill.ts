// Backfill for history documents written before the read keys existed (src/consume/history.ts): one pass over a
// table's history that sets `aggKey`, `day`, `actorDay` and `txId` where any is missing, and records their day
// buckets; then makes the table's day lists complete. Idempotent and resumable (it only looks at documents still
// missing a key); safe next to a running consumer.
import type { Doc, Store, WriteOp } from '../clients/mongo.ts'
import { READ_KEYS, ensureHistoryIndexes, historyCollection, readKeys, reconcileDayLists, recordDays, type KeySource } from './history.ts'
import { ensureStateIndexes, findKeys, stateCollection } from './state.ts'

export interface BackfillProgress {
  table: string
  /** Documents seen that were missing a read key. */
  scanned: number
  /** Of those, documents updated (the others lack an envelope field and are left as they are). */
  updated: number
  /** Day lists written (history only: one per table and per actor, see history.ts `reconcileDayLists`). */
  dayLists?: number
}

const BATCH = 500
/** Update commands in flight at once (each at most 8 updates, see clients/mongo.ts: FerretDB's pool is 50). */
const WRITERS = 4

const hasEnvelope = (d: Doc): d is Doc & KeySource =>
  typeof (d.aggregate as { id?: unknown } | undefined)?.id === 'string' &&
  typeof d.occurredAt === 'string' &&
  typeof (d.actor as { id?: unknown } | undefined)?.id === 'string' &&
  typeof (d.tx as { id?: unknown } | undefined)?.id === 'string'

export async function backfillHistory(store: Store, table: string, progress: (p: BackfillProgress) => void = () => {}): Promise<BackfillProgress> {
  await ensureHistoryIndexes(store, [table])
  const collection = store.collection(historyCollection(table))
  const done: BackfillProgress = { table, scanned: 0, updated: 0 }
  const missing = { $or: READ_KEYS.map((k) => ({ [k]: { $exists: false } })) }
  const projection = { aggregate: 1, occurredAt: 1, actor: 1, tx: 1 } as const
  for await (const batch of collection.scan(missing, { batchSize: BATCH, projection })) {
    done.scanned += batch.length
    const docs = batch.filter(hasEnvelope)
    // Buckets first, as the consumer does: a reader never sees a keyed document whose day is not listed.
    await recordDays(store, table, docs)
    const ops: WriteOp[] = docs.map((d) => ({ updateOne: { filter: { _id: d._id }, update: { $set: readKeys(d) } } }))
    await writeShared(collection, ops)
    done.updated += docs.length
    progress({ ...done })
  }
  done.dayLists = await reconcileDayLists(store, table)
  return done
}

/** Writes the update ops of one batch from a few writers at once. */
async function writeShared(collection: ReturnType<Store['collection']>, ops: WriteOp[]): Promise<void> {
  const share = Math.ceil(ops.length / WRITERS)
  await Promise.all(Array.from({ length: WRITERS }, (_, i) => ops.slice(i * share, (i + 1) * share)).filter((s) => s.length > 0).map((s) => collection.bulkWrite(s)))
}

/**
 * The same for a table's read model: sets the find keys (state.ts `findKeys`) on states written before them. Each
 * update is guarded by the version it was computed from, so a state the consumer moved meanwhile (which then got its
 * keys from the consumer) is left alone.
 */
export async function backfillState(store: Store, table: string, progress: (p: BackfillProgress) => void = () => {}): Promise<BackfillProgress> {
  await ensureStateIndexes(store, [table])
  const collection = store.collection(stateCollection(table))
  const done: BackfillProgress = { table, scanned: 0, updated: 0 }
  for await (const batch of collection.scan({ find: { $exists: false } }, { batchSize: BATCH, projection: { row: 1, version: 1 } })) {
    done.scanned += batch.length
    const ops: WriteOp[] = batch.map((d) => ({
      updateOne: { filter: { _id: d._id, version: d.version }, update: { $set: { find: findKeys((d.row ?? null) as Record<string, unknown> | null) } } },
    }))
    await writeShared(collection, ops)
    done.updated += ops.length
    progress({ ...done })
  }
  return done
}
