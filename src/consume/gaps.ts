// Aggregates whose state waits for a missing version, kept durable in `cdc_gaps` so a restart still knows them.
import type { Store } from '../clients/mongo.ts'

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
}

const gapKey = (table: string, aggregateId: string) => `${table}/${aggregateId}`

export class Gaps {
  private constructor(
    private readonly store: Store,
    private readonly known: Map<string, GapDoc>,
  ) {}

  static async load(store: Store): Promise<Gaps> {
    const docs = await store.collection<GapDoc>(GAPS_COLLECTION).find({})
    return new Gaps(store, new Map(docs.map((d) => [d._id, d])))
  }

  has(table: string, aggregateId: string): boolean {
    return this.known.has(gapKey(table, aggregateId))
  }

  list(): GapDoc[] {
    return [...this.known.values()]
  }

  /** Records (or updates) a gap; true when it is new. */
  async mark(table: string, aggregateId: string, stateVersion: number, seenUpTo: number): Promise<boolean> {
    const _id = gapKey(table, aggregateId)
    const previous = this.known.get(_id)
    if (previous && previous.stateVersion === stateVersion && previous.seenUpTo === seenUpTo) return false
    const doc: GapDoc = {
      _id,
      table,
      aggregateId,
      stateVersion,
      missing: stateVersion + 1,
      seenUpTo,
      detectedAt: previous?.detectedAt ?? new Date().toISOString(),
    }
    const { _id: _, ...fields } = doc
    await this.store.collection(GAPS_COLLECTION).bulkWrite([{ updateOne: { filter: { _id }, update: { $set: fields }, upsert: true } }])
    this.known.set(_id, doc)
    return previous === undefined || previous.stateVersion !== stateVersion
  }

  async clear(table: string, aggregateId: string): Promise<void> {
    const _id = gapKey(table, aggregateId)
    if (!this.known.has(_id)) return
    await this.store.collection(GAPS_COLLECTION).deleteMany({ _id })
    this.known.delete(_id)
  }
}
