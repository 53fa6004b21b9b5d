// Aggregates with a message in the DLQ: their later messages are parked behind it (also sent to the DLQ) so that
// order survives a redrive. Durable in `cdc_parked`; redrive writes `release`, the list of redriven messages that may
// pass, and the park is lifted once the last of them was consumed. A Parking holds the parks of one owned partition
// (see ownership.ts): loaded when the partition is claimed, written only after the owner checked its claim.
import type { Store } from '../clients/mongo.ts'

export const PARKED_COLLECTION = 'cdc_parked'

export interface Park {
  [field: string]: unknown
  /** parkKey(topic, key) */
  _id: string
  topic: string
  /** The Kafka partition of the key (a park lives and dies with its partition's owner); absent on older parks. */
  partition?: number
  key: string
  /** Event id (or DLQ-independent position) of the message everything else waits behind. */
  head: string
  error: string
  at: string
  /** `cdc-redrive-id`s of the redriven messages allowed through, in order; set by redrive. */
  release: string[]
  /** The highest partition offset of a message parked behind it (they are parked in offset order); consumer-set. */
  parkedUpTo?: string
  /** The highest original offset among the released messages; set by redrive with `release`. */
  releasedUpTo?: string
}

const later = (a: string | undefined, b: string | undefined) => (a === undefined ? b : b === undefined || Number(a) >= Number(b) ? a : b)

/** The park with one more message parked behind it (idempotent: a redelivered message is the same offset). */
export function parkedBehind(park: Park, offset: string): Park {
  const parkedUpTo = later(park.parkedUpTo, offset)
  return parkedUpTo === park.parkedUpTo ? park : { ...park, parkedUpTo }
}

/**
 * After the last released message passed: lifted (null) when the messages parked behind the park were all released
 * (redrive releases an aggregate's DLQ entries as one group, in the order they were parked, so the highest offsets
 * tell). Otherwise a message was parked after the redrive read the DLQ; it is still there, so the park stays and
 * everything after waits for the next redrive, in order.
 */
export function afterRelease(park: Park): Park | null {
  if (park.parkedUpTo === undefined || Number(park.parkedUpTo) <= Number(park.releasedUpTo ?? -1)) return null
  return { ...park, release: [] }
}

/** Merges what a batch parked behind a park into a fresher copy of it. */
export function withParked(fresh: Park, local: Park): Park {
  return { ...fresh, parkedUpTo: later(fresh.parkedUpTo, local.parkedUpTo) }
}

/** Order is per Kafka key within a topic, so that is what a park covers. */
export const parkKey = (topic: string, key: string | null) => `${topic}/${key ?? ''}`

export class Parking {
  private constructor(
    private readonly store: Store,
    private readonly parks: Map<string, Park>,
    private readonly fence: () => Promise<void>,
  ) {}

  /** The parks of one partition (`topic` is a top-level equality: served by an index on MongoDB, and small anyway). */
  static async load(store: Store, topic: string, partition: number, fence: () => Promise<void>): Promise<Parking> {
    const docs = await store.collection<Park>(PARKED_COLLECTION).find({ topic })
    // Older parks carry no partition: a key maps to one partition, so keeping them in every partition is harmless.
    const mine = docs.filter((d) => d.partition === undefined || d.partition === partition)
    return new Parking(store, new Map(mine.map((d) => [d._id, d])), fence)
  }

  get size() {
    return this.parks.size
  }

  get(key: string): Park | undefined {
    return this.parks.get(key)
  }

  /** Re-reads one park: redrive may have released messages since it was cached. */
  async refresh(key: string): Promise<Park | undefined> {
    const doc = await this.store.collection<Park>(PARKED_COLLECTION).findOne({ _id: key })
    if (doc) this.parks.set(key, doc)
    else this.parks.delete(key)
    return doc ?? undefined
  }

  /**
   * Applies a batch's outcome: new or reset parks (Park), lifted ones (null). For the keys in `parkedOnly` only the
   * highest parked offset changed: just that field is written, so a `release` redrive wrote meanwhile is kept.
   */
  async save(changes: Map<string, Park | null>, parkedOnly: ReadonlySet<string> = new Set()): Promise<void> {
    if (changes.size === 0) return
    await this.fence()
    const lifted = [...changes].filter(([, p]) => p === null).map(([k]) => k)
    const set = [...changes.values()].filter((p): p is Park => p !== null)
    const collection = this.store.collection(PARKED_COLLECTION)
    if (set.length > 0) {
      await collection.bulkWrite(
        set.map(({ _id, ...fields }) => ({
          updateOne: { filter: { _id }, update: { $set: parkedOnly.has(_id) ? { parkedUpTo: fields.parkedUpTo } : fields }, upsert: true },
        })),
      )
    }
    if (lifted.length > 0) await collection.deleteMany({ _id: { $in: lifted } })
    for (const [key, park] of changes) {
      if (park) this.parks.set(key, park)
      else this.parks.delete(key)
    }
  }
}
