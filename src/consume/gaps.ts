// Aggregates whose state waits for a missing version, kept durable in `cdc_gaps` so a restart still knows them. A gap
// belongs to the partition whose batch found it: only that partition's owner holds it in memory and re-checks it,
// with a backoff, by reading the state by `_id` (an index-served read); the history is read only once the state moved.
import type { Store } from '../clients/mongo.ts'
import * as metrics from './metrics.ts'

export const GAPS_COLLECTION = 'cdc_gaps'

export interface GapDoc {
  [field: string]: unknown
  _id: string
  table: string
  aggregateId: string
  /** The version the state is held at; `missing` = stateVersion + 1. */
  stateVersion: number
  missing: number
  /** Highest version already in the history, waiting. */
  seenUpTo: number
  detectedAt: string
  /** The partition whose batch found the gap (absent on gaps recorded before partitions owned them). */
  topic?: string
  partition?: number
}

/** Where a batch came from. */
export interface Place {
  topic: string
  partition: number
}

const gapKey = (table: string, aggregateId: string) => `${table}/${aggregateId}`
export const placeKey = (p: Place) => `${p.topic}|${p.partition}`

const FIRST_RECHECK_MS = 2_000
const MAX_RECHECK_MS = 60_000

interface Known {
  doc: GapDoc
  place: string
  dueAt: number
  delayMs: number
}

export class Gaps {
  private readonly known = new Map<string, Known>()

  constructor(private readonly store: Store) {}

  /**
   * Takes over the gaps these partitions' batches found: at the claim, and for every partition when it is assigned
   * (a gap waits on a partition that may get nothing more: its missing version comes through another topic).
   */
  async load(places: Place[]): Promise<void> {
    const wanted = new Set(places.map(placeKey))
    for (const topic of new Set(places.map((p) => p.topic))) {
      for (const doc of await this.store.collection<GapDoc>(GAPS_COLLECTION).find({ topic })) {
        const place = placeKey({ topic, partition: doc.partition ?? -1 })
        if (wanted.has(place) && !this.known.has(doc._id)) this.remember(doc, place)
      }
    }
    this.observe()
  }

  /** Forgets the gaps of partitions this process no longer owns. */
  retain(owned: Place[]) {
    const keep = new Set(owned.map(placeKey))
    for (const [id, k] of this.known) if (!keep.has(k.place)) this.known.delete(id)
    this.observe()
  }

  has(table: string, aggregateId: string): boolean {
    return this.known.has(gapKey(table, aggregateId))
  }

  list(): GapDoc[] {
    return [...this.known.values()].map((k) => k.doc)
  }

  /** Gaps whose re-check is due, with where they belong. */
  due(now = Date.now()): { doc: GapDoc; place: Place }[] {
    return [...this.known.values()]
      .filter((k) => k.dueAt <= now)
      .map((k) => ({ doc: k.doc, place: { topic: k.doc.topic!, partition: k.doc.partition! } }))
  }

  /** A re-check found nothing new: wait longer before the next one. */
  backOff(table: string, aggregateId: string, now = Date.now()) {
    const k = this.known.get(gapKey(table, aggregateId))
    if (!k) return
    k.delayMs = Math.min(MAX_RECHECK_MS, k.delayMs * 2)
    k.dueAt = now + k.delayMs
  }

  /** Records (or updates) a gap; true when it is new. */
  async mark(table: string, aggregateId: string, stateVersion: number, seenUpTo: number, where: Place): Promise<boolean> {
    const _id = gapKey(table, aggregateId)
    const previous = this.known.get(_id)?.doc
    if (previous && previous.stateVersion === stateVersion && previous.seenUpTo === seenUpTo) return false
    const doc: GapDoc = {
      _id,
      table,
      aggregateId,
      stateVersion,
      missing: stateVersion + 1,
      seenUpTo,
      detectedAt: previous?.detectedAt ?? new Date().toISOString(),
      topic: where.topic,
      partition: where.partition,
    }
    const { _id: _, ...fields } = doc
    await this.store.collection(GAPS_COLLECTION).bulkWrite([{ updateOne: { filter: { _id }, update: { $set: fields }, upsert: true } }])
    this.remember(doc, placeKey(where))
    this.observe()
    return previous === undefined || previous.stateVersion !== stateVersion
  }

  async clear(table: string, aggregateId: string): Promise<void> {
    const _id = gapKey(table, aggregateId)
    if (!this.known.has(_id)) return
    await this.store.collection(GAPS_COLLECTION).deleteMany({ _id })
    this.known.delete(_id)
    this.observe()
  }

  private remember(doc: GapDoc, place: string) {
    this.known.set(doc._id, { doc, place, dueAt: Date.now() + FIRST_RECHECK_MS, delayMs: FIRST_RECHECK_MS })
  }

  private observe() {
    metrics.openGaps.set(this.known.size)
  }
}
