// One polled partition batch, grouped by aggregate: route (parked / poison / good), one insertMany per history
// collection, one state bulk write per table, then the DLQ sends and park changes. Every step is idempotent, so a
// failed batch is simply processed again; the caller commits the offset only after this resolved. A document the store
// rejects fails alone (dead-lettered); only a failure of the store itself fails the batch (see retry.ts).
import type { InMessage, OutMessage } from '../clients/kafka.ts'
import { StoreError, type Store } from '../clients/mongo.ts'
import { DISCARDED_BY_HEADER, DlqHeaders, EventHeaders, type CdcEvent } from '../events.ts'
import type { Logger } from '../log.ts'
import { decode } from './decode.ts'
import { deadLetter, type DeadLetterSender } from './dlq.ts'
import { historyCollection, historyDoc, recordDays } from './history.ts'
import * as metrics from './metrics.ts'
import { OutcomeBatch, type OutcomeMode } from './outcomes.ts'
import { afterRelease, parkedBehind, parkKey, withParked, type Park, type Parking } from './parking.ts'
import type { StateApplier } from './state.ts'

export interface BatchContext {
  store: Store
  dlq: DeadLetterSender
  parking: Parking
  state: StateApplier
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

/**
 * What earlier attempts at the same messages wrote, so that a batch processed again counts its events once: an event
 * an earlier attempt inserted is "stored" again, not a duplicate.
 */
export class BatchMemory {
  readonly written = new Set<string>()
}

interface Good {
  message: InMessage
  event: CdcEvent
  key: string
}

/**
 * A string as MongoDB-wire servers accept it: FerretDB on PostgreSQL refuses NUL in any string (22P05), and lone
 * surrogates cannot be encoded. For text we write about a message (errors, ids from headers), never its event.
 */
export const storable = (text: string, max = 2000) => text.slice(0, max).replaceAll('\u0000', '\\u0000').toWellFormed()

/**
 * Whether a key can name a park. A key no storable aggregate can have (over 1,000 bytes: beyond an aggregate id, and
 * beyond what an index entry takes on FerretDB/PostgreSQL; or with NUL, which it refuses) has no good messages to keep
 * in order: its messages fail on their own, one by one.
 */
const parkable = (key: string | null) => key === null || (Buffer.byteLength(key) <= 1000 && !key.includes('\u0000'))

/** The park a failed message leaves for its key, or undefined when the key cannot have one. */
function parkFor(message: InMessage, head: string, error: string, at: string): Park | undefined {
  if (!parkable(message.key)) return undefined
  const key = parkKey(message.topic, message.key)
  return { _id: key, topic: message.topic, partition: message.partition, key: message.key ?? '', head: storable(head, 200), error: storable(error), at, release: [] }
}

/** The event id a failed message names, if any (from its envelope, else its header, which may hold anything). */
const eventIdOf = (message: InMessage, event?: CdcEvent) => {
  const id = event?.id ?? message.headers[EventHeaders.id]
  return id === undefined ? null : storable(id, 200)
}

const position = (m: InMessage) => `${m.topic}:${m.partition}:${m.offset}`

export async function processBatch(ctx: BatchContext, messages: InMessage[], memory = new BatchMemory()): Promise<BatchOutcome> {
  const at = new Date().toISOString()
  const outcome: BatchOutcome = { stored: 0, duplicates: 0, deadLettered: 0, parked: 0 }
  /** Park changes made by this batch (null = lifted); they win over the cached parks. */
  const parks = new Map<string, Park | null>()
  /** Keys whose park this batch created, reset or lifted (the others only gained parked messages). */
  const decided = new Set<string>()
  const current = (key: string) => (parks.has(key) ? (parks.get(key) ?? undefined) : ctx.parking.get(key))
  const dead: OutMessage[] = []
  const trail = new OutcomeBatch(ctx.store, ctx.outcomes, at)
  // Counted once the batch is through: a failed attempt counts nothing, so retries never inflate the counters.
  const counts: (() => void)[] = []

  const fail = (message: InMessage, key: string, error: string, event?: CdcEvent) => {
    dead.push(deadLetter(message, { error, group: ctx.groupId, at, parked: false }))
    const eventId = eventIdOf(message, event)
    trail.add('dead-lettered', message, { eventId, error: storable(error) })
    const park = parkFor(message, eventId ?? position(message), error, at)
    if (park) {
      parks.set(key, park)
      decided.add(key)
    }
    outcome.deadLettered++
    counts.push(() => metrics.deadLettered.inc({ topic: message.topic }))
    ctx.log.warn('dead-lettered', { topic: message.topic, partition: message.partition, offset: message.offset, eventId, error })
  }

  const lift = (key: string, park: Park) => {
    parks.set(key, afterRelease(park))
    decided.add(key)
  }

  const good: Good[] = []
  for (const message of messages) {
    const key = parkKey(message.topic, message.key)
    let park = current(key)
    const redriveId = message.headers[DlqHeaders.redriveId]
    if (park && redriveId !== undefined && !park.release.includes(redriveId) && !decided.has(key)) {
      // Redrive released messages since the park was read; keep what this batch parked behind it meanwhile.
      const fresh = await ctx.parking.refresh(key)
      park = fresh && parks.has(key) ? withParked(fresh, park) : fresh
      if (parks.has(key)) parks.set(key, park ?? null)
    }
    const released = park !== undefined && redriveId !== undefined && park.release.includes(redriveId)
    if (park && !released) {
      dead.push(deadLetter(message, { error: `parked behind ${park.head}`, group: ctx.groupId, at, parked: true }))
      trail.add('parked', message, { eventId: eventIdOf(message), error: `parked behind ${park.head}` })
      outcome.parked++
      counts.push(() => metrics.parked.inc({ topic: message.topic }))
      parks.set(key, parkedBehind(park, message.offset))
      continue
    }
    // A discarded head that had no version to occupy (see redrive/discard.ts): it only lets the followers pass (also
    // when it is delivered again after its park was lifted).
    if (message.headers[DISCARDED_BY_HEADER] !== undefined && (message.value?.length ?? 0) === 0) {
      trail.add('discarded', message, { error: `discarded by ${message.headers[DISCARDED_BY_HEADER]}` })
      if (released && redriveId === park!.release.at(-1)) lift(key, park!)
      continue
    }
    const decoded = decode(message, ctx.tables)
    if (!decoded.ok) {
      fail(message, key, decoded.error)
      continue
    }
    good.push({ message, event: decoded.event, key })
    // The last released message lifts the park, unless something in this batch parks the aggregate again.
    if (released && redriveId === park!.release.at(-1)) lift(key, park!)
  }

  const byTable = new Map<string, Good[]>()
  for (const g of good) {
    let list = byTable.get(g.event.aggregate.type)
    if (!list) byTable.set(g.event.aggregate.type, (list = []))
    list.push(g)
  }
  const storedAtMs = Date.now()
  const storedAt = new Date(storedAtMs).toISOString()
  const rejected = new Set<Good>()
  await Promise.all(
    [...byTable].map(async ([table, items]) => {
      const result = await insertHistory(ctx.store, table, items, storedAt, memory)
      outcome.stored += result.inserted
      outcome.duplicates += result.duplicated.size
      counts.push(() => {
        metrics.stored.inc({ table }, result.inserted)
        if (result.duplicated.size > 0) metrics.duplicates.inc({ table }, result.duplicated.size)
        for (const item of items) {
          if (result.rejected.has(item) || result.duplicated.has(item)) continue
          metrics.commitToHistory.observe((storedAtMs - Date.parse(item.event.occurredAt)) / 1000, { table })
        }
      })
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
  await Promise.all([ctx.dlq.send(dead), trail.flush()])
  await ctx.parking.save(parks, new Set([...parks.keys()].filter((k) => !decided.has(k))))
  trail.count()
  for (const count of counts) count()
  return outcome
}

/**
 * Dead-letters one message that could not be processed at all (its batch kept failing and isolation narrowed it down
 * to this one), and parks its key so its followers keep their order.
 */
export async function deadLetterAlone(ctx: BatchContext, message: InMessage, error: string): Promise<void> {
  const at = new Date().toISOString()
  const trail = new OutcomeBatch(ctx.store, ctx.outcomes, at)
  const eventId = eventIdOf(message)
  trail.add('dead-lettered', message, { eventId, error: storable(error) })
  await ctx.dlq.send([deadLetter(message, { error, group: ctx.groupId, at, parked: false })])
  const park = parkFor(message, eventId ?? position(message), error, at)
  // The store may be what failed: the DLQ copy is what counts; a park or outcome that cannot be written is logged.
  await Promise.all([park ? ctx.parking.save(new Map([[park._id, park]])) : undefined, trail.flush()]).catch((e) =>
    ctx.log.error('dead-lettered, but its park or outcome could not be written', { topic: message.topic, offset: message.offset, error: e }),
  )
  trail.count()
  metrics.deadLettered.inc({ topic: message.topic })
  ctx.log.warn('dead-lettered', { topic: message.topic, partition: message.partition, offset: message.offset, eventId, error })
}

interface InsertOutcome {
  inserted: number
  /** The items that were already stored before this batch (redelivered). */
  duplicated: Set<Good>
  rejected: Map<Good, string>
}

/**
 * One unordered insertMany; the documents MongoDB rejects for good are named. When the server does not say which one
 * it refused (FerretDB reports a PostgreSQL error for the whole command, having written the documents before it), the
 * items are halved until it does.
 */
async function insertHistory(store: Store, table: string, items: Good[], storedAt: string, memory: BatchMemory): Promise<InsertOutcome> {
  const collection = store.collection(historyCollection(table))
  // The day buckets first: an audit search never misses a stored event (an empty bucket costs nothing).
  await recordDays(store, table, items.map((g) => g.event))
  const out: InsertOutcome = { inserted: 0, duplicated: new Set(), rejected: new Map() }
  /** `unsure`: an earlier try of this very call may have written some of `part`, so its duplicates are ours. */
  const settle = (part: Good[], duplicates: number[], failed: Map<number, string>, unsure: boolean) => {
    const dup = new Set(duplicates)
    part.forEach((g, i) => {
      const error = failed.get(i)
      if (error !== undefined) out.rejected.set(g, error)
      else if (dup.has(i) && !unsure && !memory.written.has(g.event.id)) out.duplicated.add(g)
      else {
        out.inserted++
        memory.written.add(g.event.id)
      }
    })
  }
  const write = async (part: Good[], unsure: boolean): Promise<void> => {
    try {
      const r = await collection.insertMany(part.map((g) => historyDoc(g.event, g.message, storedAt)))
      settle(part, r.duplicates, new Map(), unsure)
    } catch (error) {
      if (!(error instanceof StoreError) || error.transient) throw error
      if (error.failed.length > 0) {
        const failed = new Map(error.failed.map((i, n) => [i, error.reasons[n] ?? error.message]))
        return settle(part, error.duplicates, failed, unsure)
      }
      if (part.length === 1) return settle(part, [], new Map([[0, error.message]]), unsure)
      const half = Math.ceil(part.length / 2)
      await write(part.slice(0, half), true)
      await write(part.slice(half), true)
    }
  }
  await write(items, false)
  return out
}
