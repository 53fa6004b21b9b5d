// The durable record of redriven DLQ entries: `cdc_dlq_redriven`, keyed by DLQ position (`<dlq topic>:<partition>:
// <offset>`). Written after the republish was acknowledged: a crash in between redrives that entry again on the next
// run, which is harmless (the consumer skips an event id it already stored), whereas recording first could lose it.
import type { Store } from '../clients/mongo.ts'

export const REDRIVEN_COLLECTION = 'cdc_dlq_redriven'

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
  const docs = await store.collection<RedrivenDoc>(REDRIVEN_COLLECTION).find({ dlqTopic: { $in: dlqTopics } }, { projection: { _id: 1 } })
  return new Set(docs.map((d) => d._id))
}

export async function recordRedriven(
  store: Store,
  entries: { position: string; dlqTopic: string; eventId: string | null; discarded?: RedrivenDoc['discarded'] }[],
) {
  if (entries.length === 0) return
  const at = new Date().toISOString()
  await store.collection(REDRIVEN_COLLECTION).bulkWrite(
    entries.map(({ position, ...fields }) => ({
      updateOne: { filter: { _id: position }, update: { $set: { ...fields, at } }, upsert: true },
    })),
  )
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
