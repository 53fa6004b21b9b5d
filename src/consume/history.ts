// `<table>_history`: one document per event, `_id` = event id, so a redelivered event is a duplicate key (skipped).
//
// Every hot read filters on one top-level scalar with equality, because that is all FerretDB 1.24 pushes down to
// its (GIN-indexed) backend; real MongoDB gets compound indexes led by the same fields, so the rest of each filter
// and the sort are index-served there too. The extra fields (READ_KEYS) never leave the API (`toHistoryItem`):
//   aggKey    = aggregate.id          one aggregate's history, `at?ts=`, the consumer's gap path
//   day       = occurredAt's UTC day  retention; the day buckets' registry
//   hour      = occurredAt's UTC hour audit search by table and time window (a busy table's day is too big to sort)
//   actorDay  = "<day> <actor.id>"    audit search by actor (and time window)
//   txId      = tx.id                 the console's transaction page
// Audit search walks day buckets; `cdc_history_days` registers the buckets that exist (per table, and per table and
// actor), so a search never probes empty days and needs no range scan, and `cdc_history_day_lists` holds each
// scope's days in one document, so a search reads one document instead of a year's worth of them.
import type { InMessage } from '../clients/kafka.ts'
import type { Doc, IndexSpec, Store, WriteOp } from '../clients/mongo.ts'
import type { CdcEvent } from '../events.ts'
import { storageNameOf } from '../tables.ts'

/** The history collection of a table by its canonical name (`app."LineItems"` → `app.LineItems_history`). */
export const historyCollection = (table: string) => `${storageNameOf(table)}_history`

export const HISTORY_INDEXES: IndexSpec[] = [
  // Uniqueness per (aggregate, version), as the contract states; also valid for documents written before aggKey.
  { key: { 'aggregate.id': 1, version: 1 }, name: 'aggregate_version', unique: true },
  { key: { aggKey: 1, version: 1 }, name: 'agg_key_version' },
  { key: { actorDay: 1, occurredAt: 1, _id: 1 }, name: 'actor_day_occurred_at' },
  { key: { day: 1, occurredAt: 1, _id: 1 }, name: 'day_occurred_at' },
  { key: { hour: 1, occurredAt: 1, _id: 1 }, name: 'hour_occurred_at' },
  { key: { txId: 1 }, name: 'tx_id' },
]

export type HistoryDoc = CdcEvent & { _id: string; storedAt: string; kafka: { topic: string; partition: number; offset: string } }

/** The top-level fields that make the hot reads index-served; stored, never served. */
export const READ_KEYS = ['aggKey', 'day', 'hour', 'actorDay', 'txId'] as const
export type ReadKeys = Record<(typeof READ_KEYS)[number], string>

export const dayOf = (occurredAt: string) => occurredAt.slice(0, 10)
export const actorDayKey = (day: string, actor: string) => `${day} ${actor}`

/** What the read keys and day buckets are made from (an envelope, or a stored history document). */
export interface KeySource {
  aggregate: { id: string }
  occurredAt: string
  actor: { id: string }
  tx: { id: string }
}

export function readKeys(event: KeySource): ReadKeys {
  const day = dayOf(event.occurredAt)
  return { aggKey: event.aggregate.id, day, hour: event.occurredAt.slice(0, 13), actorDay: actorDayKey(day, event.actor.id), txId: event.tx.id }
}

export function historyDoc(event: CdcEvent, message: InMessage, storedAt: string): HistoryDoc & Doc {
  return {
    _id: event.id,
    ...event,
    storedAt,
    kafka: { topic: message.topic, partition: message.partition, offset: message.offset },
    ...readKeys(event),
  }
}

/** A history document as the API serves it: the envelope plus storedAt and kafka (no `_id`, no read keys). */
export function toHistoryItem(doc: Doc): Doc {
  const { _id, aggKey, day, hour, actorDay, txId, ...item } = doc
  return item
}

/** Contiguous versions of one aggregate after `after`, ascending, read from its history (the slow path of gaps). */
export async function historyAfter(store: Store, table: string, aggregateId: string, after: number): Promise<HistoryDoc[]> {
  const out: HistoryDoc[] = []
  const page = 1000
  for (let from = after; ; ) {
    const docs = await store
      .collection<HistoryDoc & Doc>(historyCollection(table))
      .find({ aggKey: aggregateId, version: { $gt: from } }, { sort: { version: 1 }, limit: page })
    out.push(...docs)
    if (docs.length < page) return out
    from = docs.at(-1)!.version
  }
}

// ---------------------------------------------------------------- day buckets

export const DAYS_COLLECTION = 'cdc_history_days'

export interface DayDoc {
  [field: string]: unknown
  /** JSON [table, actor | null, day] */
  _id: string
  /** JSON [table, actor | null]: null = every event of the table. */
  scope: string
  table: string
  day: string
}

export const DAY_INDEXES: IndexSpec[] = [
  { key: { scope: 1, day: 1 }, name: 'scope_day' },
  { key: { table: 1, day: 1 }, name: 'table_day' },
]

/** Retention finds a table's lists by `table`. */
const DAY_LIST_INDEX: IndexSpec = { key: { table: 1 }, name: 'table' }

export const dayScope = (table: string, actor: string | null) => JSON.stringify([table, actor])

function dayDocs(table: string, events: Pick<KeySource, 'occurredAt' | 'actor'>[]): DayDoc[] {
  const out = new Map<string, DayDoc>()
  for (const e of events) {
    const day = dayOf(e.occurredAt)
    for (const actor of [null, e.actor.id]) {
      const _id = JSON.stringify([table, actor, day])
      if (!out.has(_id)) out.set(_id, { _id, scope: dayScope(table, actor), table, day })
    }
  }
  return [...out.values()]
}

/**
 * One scope's days in one document (`_id` = the scope): what audit search reads. Reading the registry instead cost
 * FerretDB ~40 ms for a year of days (one document each), and grew with the history's age; this list, ~3 ms. Made
 * complete when it is created (from the registry, by `recordDays`), then kept with `$addToSet` / `$pullAll`; a scope
 * without one (history written by an older version) is read from the registry.
 */
export const DAY_LISTS_COLLECTION = 'cdc_history_day_lists'

export interface DayListDoc {
  [field: string]: unknown
  _id: string
  table: string
  days: string[]
}

/** Buckets this process already recorded, per store (a bounded memo: forgetting only costs a duplicate insert). */
const recorded = new WeakMap<Store, Set<string>>()
/** Scopes whose day list this process knows to exist, per store. */
const listed = new WeakMap<Store, Set<string>>()
const RECORDED_MAX = 100_000

const memo = (of: WeakMap<Store, Set<string>>, store: Store) => {
  let set = of.get(store)
  if (!set) of.set(store, (set = new Set()))
  return set
}

/**
 * Records the day buckets of events about to be written to a table's history, in the registry and in the scopes'
 * day lists. Called before the history write, so a reader never misses a stored event; a bucket whose write then
 * fails is merely empty. Idempotent, and once per bucket per process.
 */
export async function recordDays(store: Store, table: string, events: Pick<KeySource, 'occurredAt' | 'actor'>[]): Promise<void> {
  const seen = memo(recorded, store)
  const fresh = dayDocs(table, events).filter((d) => !seen.has(d._id))
  if (fresh.length === 0) return
  await store.collection<DayDoc>(DAYS_COLLECTION).insertMany(fresh)
  const byScope = new Map<string, string[]>()
  for (const d of fresh) byScope.set(d.scope, [...(byScope.get(d.scope) ?? []), d.day])
  const known = memo(listed, store)
  const lists = store.collection<DayListDoc>(DAY_LISTS_COLLECTION)
  const additions = await Promise.all(
    [...byScope].map(async ([scope, days]): Promise<[string, string[]]> => {
      // A list created now starts with every day the registry has (history recorded before lists existed).
      if (!known.has(scope) && (await lists.findOne({ _id: scope })) === null) days = [...days, ...(await registeredDays(store, scope))]
      return [scope, days]
    }),
  )
  await addToLists(store, table, additions)
  if (known.size + byScope.size > RECORDED_MAX) known.clear()
  for (const scope of byScope.keys()) known.add(scope)
  if (seen.size + fresh.length > RECORDED_MAX) seen.clear()
  for (const d of fresh) seen.add(d._id)
}

/**
 * Makes every day list of a table hold every day its registry has (`cdc backfill`): creates the lists of scopes that
 * have none (history written before them, by an actor with no event since) and adds days a writer of an older
 * version registered without listing them. Returns how many lists it wrote.
 */
export async function reconcileDayLists(store: Store, table: string): Promise<number> {
  const byScope = new Map<string, string[]>()
  for await (const batch of store.collection<DayDoc>(DAYS_COLLECTION).scan({ table }, { batchSize: 1000, projection: { scope: 1, day: 1 } })) {
    for (const d of batch) byScope.set(d.scope, [...(byScope.get(d.scope) ?? []), d.day])
  }
  const additions = [...byScope]
  for (let i = 0; i < additions.length; i += 100) await addToLists(store, table, additions.slice(i, i + 100))
  return additions.length
}

/** Adds days to scopes' lists, creating the lists that are missing. */
async function addToLists(store: Store, table: string, additions: [scope: string, days: string[]][]): Promise<void> {
  const lists = store.collection(DAY_LISTS_COLLECTION)
  const ops: WriteOp[] = additions.map(([scope, days]) => ({
    updateOne: { filter: { _id: scope }, update: { $addToSet: { days: { $each: days } }, $setOnInsert: { table } }, upsert: true },
  }))
  // Two writers creating one list at once: the loser's upsert is a duplicate key; as an update it applies.
  const { duplicates } = await lists.bulkWrite(ops)
  if (duplicates.length > 0) await lists.bulkWrite(duplicates.map((i) => ops[i]!))
}

async function registeredDays(store: Store, scope: string): Promise<string[]> {
  const docs = await store.collection<DayDoc>(DAYS_COLLECTION).find({ scope }, { projection: { day: 1 } })
  return docs.map((d) => d.day)
}

/** The days (ascending) that hold events of a table, or of one actor in it. */
export async function daysOf(store: Store, table: string, actor: string | null): Promise<string[]> {
  const scope = dayScope(table, actor)
  const list = await store.collection<DayListDoc>(DAY_LISTS_COLLECTION).findOne({ _id: scope })
  return [...new Set(list ? list.days : await registeredDays(store, scope))].sort()
}

/** Forgets a table's buckets of the given days (after retention removed their events). */
export async function forgetDays(store: Store, table: string, days: Set<string>): Promise<void> {
  const docs = await store.collection<DayDoc>(DAYS_COLLECTION).find({ table }, { projection: { _id: 1, day: 1 } })
  const ops = docs.filter((d) => days.has(d.day)).map((d) => ({ deleteMany: { filter: { _id: d._id } } }))
  // The lists first: a day still registered but no longer listed is only an empty bucket found again by nobody.
  const lists = await store.collection<DayListDoc>(DAY_LISTS_COLLECTION).find({ table }, { projection: { _id: 1 } })
  const pull = [...days]
  if (lists.length > 0) {
    await store.collection(DAY_LISTS_COLLECTION).bulkWrite(lists.map((l) => ({ updateOne: { filter: { _id: l._id }, update: { $pullAll: { days: pull } } } })))
  }
  if (ops.length > 0) await store.collection(DAYS_COLLECTION).bulkWrite(ops)
  recorded.get(store)?.clear()
}

/**
 * Idempotent. One index per call: FerretDB 1.24 drops the connection when several of them already exist. `named`: the
 * collection to index for a table (replay builds its history under another name, indexed the same way).
 */
export async function ensureHistoryIndexes(store: Store, tables: string[], named = historyCollection): Promise<void> {
  for (const index of DAY_INDEXES) await store.collection(DAYS_COLLECTION).createIndexes([index])
  await store.collection(DAY_LISTS_COLLECTION).createIndexes([DAY_LIST_INDEX])
  for (const table of tables) {
    for (const index of HISTORY_INDEXES) await store.collection(named(table)).createIndexes([index])
  }
}
