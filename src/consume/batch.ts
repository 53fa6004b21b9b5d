// One polled partition batch, grouped by aggregate: route (parked / poison / good), one insertMany per history
// collection, one state bulk write per table, then the DLQ sends and park changes. Every step is idempotent, so a
// failed batch is simply processed again; the caller commits the offset only after this resolved.
import type { InMessage, OutMessage, Producer } from '../clients/kafka.ts'
import { StoreError, type Store } from '../clients/mongo.ts'
import { DlqHeaders, EventHeaders, type CdcEvent } from '../events.ts'
import type { Logger } from '../log.ts'
import { decode } from './decode.ts'
import { deadLetter } from './dlq.ts'
import { historyCollection, historyDoc, recordDays } from './history.ts'
import * as metrics from './metrics.ts'
import { OutcomeBatch, type OutcomeMode } from './outcomes.ts'
import { parkKey, type Park, type Parking } from './parking.ts'
import type { StateWriter } from './state.ts'

export interface BatchContext {
  store: Store
  producer: Producer
  parking: Parking
  state: StateWriter
  tables: ReadonlySet<string>
  groupId: string
  log: Logger
  /** consume.outcomes: which outcomes go to `cdc_outcomes`. */
  outcomes: OutcomeMode
}

export interface BatchOutcome {
  stored: number
  duplicates: number
  deadLettered: number
  parked: number
}

interface Good {
  message: InMessage
  event: CdcEvent
  key: string
}

export async function processBatch(ctx: BatchContext, messages: InMessage[]): Promise<BatchOutcome> {
  const at = new Date().toISOString()
  const outcome: BatchOutcome = { stored: 0, duplicates: 0, deadLettered: 0, parked: 0 }
  /** Park changes made by this batch (null = lifted); they win over the cached parks. */
  const parks = new Map<string, Park | null>()
  const current = (key: string) => (parks.has(key) ? (parks.get(key) ?? undefined) : ctx.parking.get(key))
  const dead: OutMessage[] = []
  const trail = new OutcomeBatch(ctx.store, ctx.outcomes, at)

  const fail = (message: InMessage, key: string, error: string, event?: CdcEvent) => {
    dead.push(deadLetter(message, { error, group: ctx.groupId, at, parked: false }))
    trail.add('dead-lettered', message, { eventId: event?.id ?? null, error })
    const head = event?.id ?? message.headers[EventHeaders.id] ?? `${message.topic}:${message.partition}:${message.offset}`
    parks.set(key, { _id: key, topic: message.topic, key: message.key ?? '', head, error, at, release: [] })
    outcome.deadLettered++
    metrics.deadLettered.inc({ topic: message.topic })
    ctx.log.warn('dead-lettered', { topic: message.topic, partition: message.partition, offset: message.offset, eventId: head, error })
  }

  const good: Good[] = []
  for (const message of messages) {
    const key = parkKey(message.topic, message.key)
    let park = current(key)
    const redriveId = message.headers[DlqHeaders.redriveId]
    if (park && redriveId !== undefined && !park.release.includes(redriveId) && !parks.has(key)) {
      park = await ctx.parking.refresh(key)
    }
    const released = park !== undefined && redriveId !== undefined && park.release.includes(redriveId)
    if (park && !released) {
      dead.push(deadLetter(message, { error: `parked behind ${park.head}`, group: ctx.groupId, at, parked: true }))
      trail.add('parked', message, { error: `parked behind ${park.head}` })
      outcome.parked++
      metrics.parked.inc({ topic: message.topic })
      continue
    }
    const decoded = decode(message, ctx.tables)
    if (!decoded.ok) {
      fail(message, key, decoded.error)
      continue
    }
    good.push({ message, event: decoded.event, key })
    // The last released message lifts the park, unless something in this batch parks the aggregate again.
    if (released && redriveId === park!.release.at(-1)) parks.set(key, null)
  }

  const byTable = new Map<string, Good[]>()
  for (const g of good) {
    let list = byTable.get(g.event.aggregate.type)
    if (!list) byTable.set(g.event.aggregate.type, (list = []))
    list.push(g)
  }
  const storedAt = new Date().toISOString()
  const rejected = new Set<Good>()
  await Promise.all(
    [...byTable].map(async ([table, items]) => {
      const result = await insertHistory(ctx.store, table, items, storedAt)
      outcome.stored += result.inserted
      outcome.duplicates += result.duplicates
      metrics.stored.inc({ table }, result.inserted)
      if (result.duplicates > 0) metrics.duplicates.inc({ table }, result.duplicates)
      for (const item of items) {
        if (!result.rejected.has(item)) trail.add(result.duplicated.has(item) ? 'duplicate' : 'stored', item.message, { eventId: item.event.id })
      }
      for (const [item, error] of result.rejected) {
        rejected.add(item)
        fail(item.message, item.key, `history write rejected: ${error}`, item.event)
      }
    }),
  )

  // Events already in the history (new or redelivered: a crash may have come between history and state). The outcomes
  // known so far are written alongside the state writes, not after them.
  await Promise.all([
    trail.flush(),
    ...[...byTable].map(async ([table, items]) => {
      const kept = items.filter((g) => !rejected.has(g))
      const { rejected: states } = await ctx.state.apply(table, kept.map((g) => g.event))
      for (const item of kept) {
        const error = states.get(item.event.aggregate.id)
        if (error !== undefined) fail(item.message, item.key, `state write rejected: ${error}`, item.event)
      }
    }),
  ])

  // The DLQ copy must be acknowledged before the offset moves past the original; the park after it, so a crash in
  // between re-dead-letters (a duplicate DLQ entry, which redrive skips) instead of parking behind a lost message.
  await Promise.all([dead.length > 0 ? ctx.producer.send(dead) : undefined, trail.flush()])
  await ctx.parking.save(parks)
  trail.count()
  return outcome
}

interface InsertOutcome {
  inserted: number
  duplicates: number
  /** The items that were already stored (redelivered); left empty on the rejection path, where our own first attempt
   *  makes duplicates of items it just wrote, so they count as stored. */
  duplicated: Set<Good>
  rejected: Map<Good, string>
}

/** One unordered insertMany; documents MongoDB rejects for good are named (retrying alone when it did not say). */
async function insertHistory(store: Store, table: string, items: Good[], storedAt: string): Promise<InsertOutcome> {
  const collection = store.collection(historyCollection(table))
  const docs = items.map((g) => historyDoc(g.event, g.message, storedAt))
  await recordDays(store, table, items.map((g) => g.event))
  try {
    const r = await collection.insertMany(docs)
    return { inserted: r.inserted, duplicates: r.duplicates.length, duplicated: new Set(r.duplicates.map((i) => items[i]!)), rejected: new Map() }
  } catch (error) {
    if (!(error instanceof StoreError) || error.transient) throw error
    // The unordered insert wrote the others: insert them again (duplicates) to learn the exact outcome.
    const out: InsertOutcome = { inserted: 0, duplicates: 0, duplicated: new Set(), rejected: new Map() }
    const suspects = error.failed.length > 0 ? new Set(error.failed) : new Set(items.keys())
    const rest = items.filter((_, i) => !suspects.has(i))
    const again = await collection.insertMany(rest.map((g) => historyDoc(g.event, g.message, storedAt)))
    out.inserted += again.inserted
    out.duplicates += again.duplicates.length
    for (const i of suspects) {
      try {
        const one = await collection.insertMany([docs[i]!])
        out.inserted += one.inserted
        out.duplicates += one.duplicates.length
      } catch (e) {
        if (!(e instanceof StoreError) || e.transient) throw e
        out.rejected.set(items[i]!, e.message)
      }
    }
    return out
  }
}
