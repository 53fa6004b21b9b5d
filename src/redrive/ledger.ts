// The durable record of redriven DLQ entries: `cdc_dlq_redriven`, keyed by DLQ position (`<dlq topic>:<partition>:
// <offset>`). Written after the republish was acknowledged: a crash in between redrives that entry again on the next
// run, which is harmless (the consumer skips an event id it already stored), whereas recording first could lose it.
import type { IndexSpec, Store } from '../clients/mongo.ts'
import { REDRIVEN_COLLECTION } from '../consume/dlq.ts'

/** Per DLQ topic, how many of its entries the ledger holds (`_id` = DLQ topic): DLQ depth without a count. */
export const REDRIVEN_COUNTS_COLLECTION = 'cdc_dlq_redriven_counts'

const LEDGER_INDEXES: IndexSpec[] = [{ key: { dlqTopic: 1, _id: 1 }, name: 'dlq_topic' }]
const indexed = new WeakSet<Store>()

/** Once per store: reads by DLQ topic are index-served (an equality FerretDB pushes down). */
async function ensureLedgerIndexes(store: Store) {
  if (indexed.has(store)) return
  for (const index of LEDGER_INDEXES) await store.collection(REDRIVEN_COLLECTION).createIndexes([index])
  indexed.add(store)
}

export interface RedrivenDoc {
  [field: string]: unknown
  _id: string
  dlqTopic: string
  at: string
  eventId: string | null
  /** Set when the entry was discarded instead of redriven. */
  discarded?: { actor: string; reason: string }
}

export const dlqPosition = (topic: string, partition: number, offset: string) => `${topic}:${partition}:${offset}`

export async function redrivenPositions(store: Store, dlqTopics: string[]): Promise<Set<string>> {
  await ensureLedgerIndexes(store)
  // One equality per topic: FerretDB scans the whole collection for `$in`.
  const perTopic = await Promise.all(
    dlqTopics.map((dlqTopic) => store.collection<RedrivenDoc>(REDRIVEN_COLLECTION).find({ dlqTopic }, { projection: { _id: 1 } })),
  )
  return new Set(perTopic.flat().map((d) => d._id))
}

/**
 * How many entries of a DLQ topic were redriven, from its counter; a topic without one (a ledger older than the
 * counters) is counted once from the ledger and gets one.
 */
export async function redrivenCount(store: Store, dlqTopic: string): Promise<number> {
  const counts = store.collection<{ _id: string; redriven: number }>(REDRIVEN_COUNTS_COLLECTION)
  const counter = await counts.findOne({ _id: dlqTopic })
  if (counter) return counter.redriven
  const redriven = (await redrivenPositions(store, [dlqTopic])).size
  const { duplicates } = await counts.insertMany([{ _id: dlqTopic, redriven }])
  return duplicates.length === 0 ? redriven : ((await counts.findOne({ _id: dlqTopic }))?.redriven ?? redriven)
}

export async function recordRedriven(
  store: Store,
  entries: { position: string; dlqTopic: string; eventId: string | null; discarded?: RedrivenDoc['discarded'] }[],
) {
  if (entries.length === 0) return
  const at = new Date().toISOString()
  const fresh = new Map<string, number>()
  // One topic at a time, so what matched (already recorded) is known per topic and the counter moves by the new ones.
  for (const dlqTopic of new Set(entries.map((e) => e.dlqTopic))) {
    const mine = entries.filter((e) => e.dlqTopic === dlqTopic)
    const { matched } = await store.collection(REDRIVEN_COLLECTION).bulkWrite(
      mine.map((e) => ({
        updateOne: { filter: { _id: e.position }, update: { $set: { dlqTopic: e.dlqTopic, at, eventId: e.eventId, ...(e.discarded ? { discarded: e.discarded } : {}) } }, upsert: true },
      })),
    )
    if (mine.length > matched) fresh.set(dlqTopic, mine.length - matched)
  }
  // Only an existing counter moves; a missing one is made from the ledger when first read (redrivenCount).
  if (fresh.size > 0) {
    await store
      .collection(REDRIVEN_COUNTS_COLLECTION)
      .bulkWrite([...fresh].map(([dlqTopic, n]) => ({ updateOne: { filter: { _id: dlqTopic }, update: { $inc: { redriven: n } } } })))
  }
}

/**
 * Claims: `cdc_dlq_claims`, one document per DLQ entry a redrive or discard took on, inserted (unique `_id`) before it
 * publishes anything, so concurrent redrives of the same entry publish it once. A claim whose holder died before it
 * recorded the redrive may be taken over after a while (that entry is then published again, which the consumer's
 * event-id deduplication absorbs).
 */
export const CLAIMS_COLLECTION = 'cdc_dlq_claims'
const STALE_CLAIM_MS = 5 * 60_000

interface ClaimDoc {
  [field: string]: unknown
  _id: string
  token: string
  at: string
}

/** Claims all `positions` for `token`, or none (someone else holds one of them): true when all are ours. */
export async function claimEntries(store: Store, positions: string[], token: string, now = Date.now()): Promise<boolean> {
  if (positions.length === 0) return true
  const claims = store.collection<ClaimDoc>(CLAIMS_COLLECTION)
  const at = new Date(now).toISOString()
  const r = await claims.insertMany(positions.map((_id) => ({ _id, token, at })))
  let ok = true
  for (const i of r.duplicates) {
    const _id = positions[i]!
    const held = await claims.findOne({ _id })
    const stale = held !== null && Date.parse(held.at) < now - STALE_CLAIM_MS && (await store.collection(REDRIVEN_COLLECTION).findOne({ _id })) === null
    const taken = stale && (await claims.bulkWrite([{ updateOne: { filter: { _id, token: held.token }, update: { $set: { token, at } } } }])).matched === 1
    if (!taken) ok = false
  }
  if (!ok) await releaseClaims(store, positions, token)
  return ok
}

/** Gives back what `token` claimed (nothing was published for them). */
export async function releaseClaims(store: Store, positions: string[], token: string) {
  for (const _id of positions) await store.collection(CLAIMS_COLLECTION).deleteMany({ _id, token })
}
