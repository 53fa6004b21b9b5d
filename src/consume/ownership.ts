// Which partitions this consumer process owns, and the park state it holds for them. Kafka hands a partition to one
// group member at a time, but a member that was dropped from the group (a batch that outlasted the rebalance) keeps
// working on what it fetched. So each owner claims a new epoch per partition in `cdc_partition_owners` (a compare-and-
// set on one document) and checks it, by `_id`, before it stores a batch and before it changes a park: a former owner
// is fenced off, and the new owner's park state, loaded after its claim, cannot go stale behind its back. Park state
// is loaded when a partition is assigned and dropped when it is revoked, so a park created or lifted by another
// process is seen by whichever process owns the partition next.
import type { Store } from '../clients/mongo.ts'
import type { Logger } from '../log.ts'
import { placeKey, type Gaps, type Place } from './gaps.ts'
import { Parking } from './parking.ts'

export const OWNERS_COLLECTION = 'cdc_partition_owners'

interface OwnerDoc {
  [field: string]: unknown
  /** `<group>|<topic>|<partition>` */
  _id: string
  epoch: number
  at: string
}

/** This process no longer owns the partition: the batch must stop without committing. */
export class FencedError extends Error {
  override name = 'FencedError'
}

/** One owned partition under one assignment generation. */
export interface OwnedPartition {
  topic: string
  partition: number
  epoch: number
  parking: Parking
  /** Throws FencedError when another process claimed the partition since this one did. */
  fence(): Promise<void>
}

const CLAIM_ATTEMPTS = 20

export class Ownership {
  private generation = 0
  private places: Place[] = []
  /** The same, as `topic|partition` keys. */
  private assigned = new Set<string>()
  /** Claimed (or being claimed) partitions of the current generation. */
  private owned = new Map<string, Promise<OwnedPartition>>()
  /** Assigned partitions whose gaps are not loaded yet (by loadGaps, so a failed read is tried again). */
  private gapsToLoad: Place[] = []

  constructor(
    private readonly store: Store,
    private readonly gaps: Gaps,
    private readonly groupId: string,
    private readonly log: Logger,
  ) {}

  /** kafkajs joined the group: the new assignment replaces everything owned before. */
  onAssigned(assigned: { topic: string; partition: number }[], generation: number) {
    this.generation = generation
    this.places = assigned.map(({ topic, partition }) => ({ topic, partition }))
    this.assigned = new Set(this.places.map(placeKey))
    this.owned.clear()
    this.gaps.retain(this.places)
    this.gapsToLoad = this.places
    this.log.info('partitions assigned', { generation, partitions: assigned.length })
  }

  onRevoked() {
    this.places = []
    this.assigned.clear()
    this.owned.clear()
    this.gaps.retain([])
    this.gapsToLoad = []
  }

  /**
   * Loads the gaps of the partitions assigned since the last call, idle ones included: a gap's missing version may
   * come through another topic, and the partition that found the gap may never get a batch again to claim it.
   */
  async loadGaps(): Promise<void> {
    const places = this.gapsToLoad
    if (places.length === 0) return
    await this.gaps.load(places)
    if (this.gapsToLoad === places) this.gapsToLoad = []
    // (assigned anew while reading: keep only what this assignment owns; the next call loads the rest)
    else this.gaps.retain(this.places)
  }

  /**
   * The partition's state for a batch fetched under `generation`: claimed and loaded on the first batch after an
   * assignment. Null when the batch belongs to an older assignment (it must not be stored or committed).
   */
  async acquire(topic: string, partition: number, generation: number): Promise<OwnedPartition | null> {
    if (generation !== this.generation) return null
    const key = placeKey({ topic, partition })
    let owned = this.owned.get(key)
    if (!owned) {
      owned = this.claim(topic, partition)
      this.owned.set(key, owned)
      // A failed claim (MongoDB down) is retried by the next batch.
      owned.catch(() => this.owned.get(key) === owned && this.owned.delete(key))
    }
    const result = await owned
    return generation === this.generation ? result : null
  }

  private async claim(topic: string, partition: number): Promise<OwnedPartition> {
    const _id = `${this.groupId}|${topic}|${partition}`
    const owners = this.store.collection<OwnerDoc>(OWNERS_COLLECTION)
    let epoch = 0
    for (let attempt = 0; epoch === 0; attempt++) {
      if (attempt >= CLAIM_ATTEMPTS) throw new Error(`claiming ${topic}[${partition}]: too many concurrent claims`)
      const doc = await owners.findOne({ _id })
      const at = new Date().toISOString()
      if (!doc) {
        const r = await owners.bulkWrite([{ insertOne: { document: { _id, epoch: 1, at } } }])
        if (r.duplicates.length === 0) epoch = 1
      } else {
        const r = await owners.bulkWrite([{ updateOne: { filter: { _id, epoch: doc.epoch }, update: { $set: { epoch: doc.epoch + 1, at } } } }])
        if (r.matched === 1) epoch = doc.epoch + 1
      }
    }
    const fence = async () => {
      const doc = await owners.findOne({ _id })
      if (doc?.epoch !== epoch) throw new FencedError(`${topic}[${partition}] was claimed by another consumer (epoch ${doc?.epoch}, ours ${epoch})`)
    }
    const [parking] = await Promise.all([Parking.load(this.store, topic, partition, fence), this.gaps.load([{ topic, partition }])])
    this.log.debug('partition claimed', { topic, partition, epoch, parks: parking.size })
    return { topic, partition, epoch, parking, fence }
  }

  /** Whether this process currently owns the partition (for gap re-checks). */
  owns(topic: string, partition: number): boolean {
    return this.assigned.has(placeKey({ topic, partition }))
  }
}
