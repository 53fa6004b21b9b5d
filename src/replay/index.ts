// `cdc replay`: rebuilds a table's history and read model from the event store (cdc.event_store) into new
// collections, swaps them in, then catches up with what was committed meanwhile. Works while the pipeline runs:
//
//   1. start  : record the PostgreSQL snapshot of now (S) and a cursor in `cdc_replay` (one document per table).
//   2. build  : page through the table's events in (aggregate, version) order into `<table>_history__replay` and
//               `<table>_state__replay` (indexed as the consumer indexes them); the cursor moves with each page, so an
//               interrupted replay resumes where it stopped (writes are idempotent, state writes version-guarded).
//   3. swap   : rename both over the live collections (dropTarget; see Collection.renameTo for FerretDB).
//   4. catch-up: apply again, to the live collections and like the consumer (history deduplicated by id, state moved
//               only through contiguous versions), every event S did not see.
//
// Why nothing is lost: the consumer keeps writing to the live collections during the build. What it wrote before the
// swap went to the collections the swap replaced; every such event was committed before the swap, so it is either
// seen by S (and read by the build, whose pages see at least what S sees) or not (and read by the catch-up, whose
// query runs after the swap). Whatever the consumer writes after the swap lands in the new collections directly; the
// next version of an aggregate whose last one went to a replaced collection waits as a gap until the catch-up.
import type { InMessage } from '../clients/kafka.ts'
import { NAMESPACE_NOT_FOUND, StoreError, type Doc, type Store, type WriteOp } from '../clients/mongo.ts'
import type { CdcEvent } from '../events.ts'
import type { Logger } from '../log.ts'
import type { Runtime } from '../runtime.ts'
import { decode } from '../consume/decode.ts'
import { Gaps } from '../consume/gaps.ts'
import { ensureHistoryIndexes, historyCollection, historyDoc, recordDays } from '../consume/history.ts'
import { advance, ensureStateIndexes, stateCollection, StateWriter, type StateDoc } from '../consume/state.ts'
import { topicFor } from '../topics.ts'
import snapshotSql from '../../sql/replay/snapshot.sql' with { type: 'text' }
import pageSql from '../../sql/replay/page.sql' with { type: 'text' }
import catchUpSql from '../../sql/replay/catch-up.sql' with { type: 'text' }
import txSizesSql from '../../sql/replay/tx-sizes.sql' with { type: 'text' }
import { withTxSize } from '../relay/tx-size.ts'

export const REPLAY_COLLECTION = 'cdc_replay'
/** Where a collection is rebuilt before the swap. */
export const rebuildName = (collection: string) => `${collection}__replay`

type Phase = 'build' | 'swap' | 'catch-up'

/** The cursor of one table's replay (`cdc_replay`, `_id` = table); gone once the replay finished. */
export interface ReplayDoc {
  [field: string]: unknown
  _id: string
  phase: Phase
  /** pg_snapshot text taken at the start. */
  snapshot: string
  /** The last (aggregate, version) built. */
  after: { aggregateId: string; version: number } | null
  /** Collections already swapped in (a rename is not repeated after an interruption). */
  swapped: string[]
  events: number
  startedAt: string
  updatedAt: string
}

export interface ReplayProgress {
  table: string
  phase: Phase
  events: number
  skipped: number
  eventsPerSecond: number
}

export interface ReplayOptions {
  /** Start over even when an interrupted replay of the table left a cursor. */
  fresh?: boolean
  pageSize?: number
  /** Called after each page (progress reporting; tests interrupt a replay here). */
  onPage?: (progress: ReplayProgress) => void | Promise<void>
  /** Called once a phase is entered and noted in the cursor (tests interrupt a replay here). */
  onPhase?: (phase: Phase) => void | Promise<void>
}

export interface ReplayResult {
  table: string
  /** Where it started: null for a fresh replay, else the cursor it resumed from. */
  resumedFrom: ReplayDoc['after'] | null
  resumed: boolean
  /** Events written into the rebuilt collections (by this run). */
  events: number
  /** Events the store holds that cannot be stored (invalid envelope, or MongoDB refuses the document): logged. */
  skipped: number
  /** Events committed during the replay, applied after the swap. */
  caughtUp: number
  seconds: number
}

interface Row {
  aggregate_id: string
  version: string | number
  tx_id: string
  payload: string
}

const DEFAULT_PAGE = 1000

export async function replayTable(rt: Runtime, table: string, options: ReplayOptions = {}): Promise<ReplayResult> {
  const started = Date.now()
  const log = rt.log.child({ role: 'replay', table })
  const store = await rt.mongo()
  const db = rt.db()
  const pageSize = options.pageSize ?? DEFAULT_PAGE
  const cursors = store.collection<ReplayDoc>(REPLAY_COLLECTION)
  const live = { history: historyCollection(table), state: stateCollection(table) }
  const rebuilt = { history: rebuildName(live.history), state: rebuildName(live.state) }
  const save = (fields: Partial<ReplayDoc>) =>
    cursors.bulkWrite([{ updateOne: { filter: { _id: table }, update: { $set: { ...fields, updatedAt: new Date().toISOString() } }, upsert: true } }])

  let doc = options.fresh ? null : await cursors.findOne({ _id: table })
  const resumed = doc !== null
  const resumedFrom = doc?.after ?? null
  if (doc) {
    log.info('replay resumed', { phase: doc.phase, after: doc.after, events: doc.events })
  } else {
    await store.collection(rebuilt.history).drop()
    await store.collection(rebuilt.state).drop()
    const [row] = await db.query<{ snapshot: string }>(snapshotSql)
    const now = new Date().toISOString()
    doc = { _id: table, phase: 'build', snapshot: row!.snapshot, after: null, swapped: [], events: 0, startedAt: now, updatedAt: now }
    await save(doc)
    log.info('replay started', { snapshot: doc.snapshot })
  }

  const counts = { events: 0, skipped: 0 }
  const report = async (phase: Phase) => {
    const seconds = Math.max(0.001, (Date.now() - started) / 1000)
    await options.onPage?.({ table, phase, events: counts.events, skipped: counts.skipped, eventsPerSecond: Math.round(counts.events / seconds) })
  }
  // tx.size of every transaction that wrote the table's events (one map per phase: its memory grows with the number of
  // such transactions); a transaction committed after it was read is counted when it first shows up.
  const sizes = new Map<string, number>()
  const countSizes = async (txIds: string[] | null) => {
    for (const r of await db.query<{ tx_id: string; n: number }>(txSizesSql, [table, txIds])) sizes.set(r.tx_id, r.n)
  }
  const parse = async (rows: Row[]) => {
    const unknown = [...new Set(rows.map((r) => r.tx_id).filter((tx) => !sizes.has(tx)))]
    if (unknown.length > 0) await countSizes(unknown)
    return parseEvents(table, rows.map((r) => ({ ...r, payload: withTxSize(r.payload, sizes.get(r.tx_id)!) })), log, counts)
  }
  const topicOf = (e: CdcEvent) => topicFor(rt.config, table, e.type)

  if (doc.phase === 'build') {
    await countSizes(null)
    await ensureHistoryIndexes(store, [table], () => rebuilt.history)
    // Creates it even for an empty table: there is always a read model to swap in.
    await ensureStateIndexes(store, [table], () => rebuilt.state)
    const states = store.collection<StateDoc>(rebuilt.state)
    let after = doc.after ?? { aggregateId: '', version: 0 }
    // The state version of the aggregate the cursor stands in (it may continue on the next page).
    let carried: { id: string; version: number | undefined } | undefined
    let first = true
    for (;;) {
      const rows = await db.query<Row>(pageSql, [table, after.aggregateId, after.version, pageSize])
      if (rows.length === 0) break
      const events = await parse(rows)
      await storeHistory(store, rebuilt.history, table, events, topicOf, log, counts)
      // After an interruption the page may have been written already in part: read what its aggregates stand at.
      const known = first && resumed ? await stateVersions(store, rebuilt.state, events) : new Map<string, number>()
      if (carried?.version !== undefined) known.set(carried.id, carried.version)
      const ops: { id: string; op: WriteOp }[] = []
      for (const [id, list] of byAggregate(events)) {
        const current = known.get(id)
        const run = list.filter((e) => current === undefined || e.version > current)
        if (run.length === 0) continue
        const $set = advance(run, current !== undefined)
        ops.push({
          id,
          op: current === undefined ? { insertOne: { document: { _id: id, ...$set } } } : { updateOne: { filter: { _id: id, version: current }, update: { $set } } },
        })
        known.set(id, run.at(-1)!.version)
      }
      await writeEach(states, ops, log, counts)
      const last = rows.at(-1)!
      after = { aggregateId: last.aggregate_id, version: Number(last.version) }
      carried = { id: after.aggregateId, version: known.get(after.aggregateId) }
      first = false
      counts.events += events.length
      await save({ after, events: doc.events + counts.events })
      await report('build')
    }
    doc.phase = 'swap'
    await save({ phase: 'swap' })
    await options.onPhase?.('swap')
  }

  if (doc.phase === 'swap') {
    for (const [from, to] of [
      [rebuilt.history, live.history],
      [rebuilt.state, live.state],
    ] as const) {
      if (doc.swapped.includes(to)) continue
      try {
        await store.collection(from).renameTo(to)
      } catch (error) {
        // Renamed already by a run interrupted before it could note it (nothing else removes the rebuilt collection).
        if (!(resumed && error instanceof StoreError && error.code === NAMESPACE_NOT_FOUND)) throw error
        log.info('collection was swapped in before the interruption', { collection: to })
      }
      doc.swapped.push(to)
      await save({ swapped: doc.swapped })
      log.info('collection swapped in', { collection: to })
    }
    doc.phase = 'catch-up'
    await save({ phase: 'catch-up' })
    await options.onPhase?.('catch-up')
  }

  // Like the consumer (a gap found here would be one the event store has too: it never has one).
  let caughtUp = 0
  const writer = new StateWriter(store, new Gaps(store), log)
  for (let after = { aggregateId: '', version: 0 }; ; ) {
    const rows = await db.query<Row>(catchUpSql, [table, doc.snapshot, after.aggregateId, after.version, pageSize])
    if (rows.length === 0) break
    const events = await parse(rows)
    await storeHistory(store, live.history, table, events, topicOf, log, counts)
    await writer.apply(table, events, { topic: REPLAY_COLLECTION, partition: -1 })
    caughtUp += events.length
    const last = rows.at(-1)!
    after = { aggregateId: last.aggregate_id, version: Number(last.version) }
    await report('catch-up')
  }
  await cursors.deleteMany({ _id: table })
  const result: ReplayResult = { table, resumed, resumedFrom, events: counts.events, skipped: counts.skipped, caughtUp, seconds: (Date.now() - started) / 1000 }
  log.info('replay done', { ...result })
  return result
}

/** The events of the rows, checked as the consumer checks a Kafka message (one that fails is logged and skipped). */
function parseEvents(table: string, rows: Row[], log: Logger, counts: { skipped: number }): CdcEvent[] {
  const tables = new Set([table])
  const out: CdcEvent[] = []
  for (const row of rows) {
    const message: InMessage = { topic: '', partition: -1, offset: '-1', key: row.aggregate_id, value: Buffer.from(row.payload), headers: {}, timestamp: '' }
    const decoded = decode(message, tables)
    if (decoded.ok) out.push(decoded.event)
    else {
      counts.skipped++
      log.warn('event store row skipped', { aggregateId: row.aggregate_id, version: Number(row.version), error: decoded.error })
    }
  }
  return out
}

/**
 * Inserts the history documents of `events` into `collection` (duplicates skipped). A replayed document says where it
 * came from: the topic its type goes to, partition -1 and offset "-1" (it was not read from Kafka).
 */
async function storeHistory(
  store: Store,
  collection: string,
  table: string,
  events: CdcEvent[],
  topicOf: (e: CdcEvent) => string,
  log: Logger,
  counts: { skipped: number },
) {
  if (events.length === 0) return
  const storedAt = new Date().toISOString()
  await recordDays(store, table, events)
  const docs = events.map((e) => historyDoc(e, { topic: topicOf(e), partition: -1, offset: '-1', key: null, value: null, headers: {}, timestamp: '' }, storedAt))
  await writeEach(store.collection(collection), docs.map((document) => ({ id: document._id, op: { insertOne: { document } } })), log, counts)
}

/** One unordered bulk write; a document the server refuses for good is found by writing one at a time, and skipped. */
async function writeEach(collection: ReturnType<Store['collection']>, ops: { id: string; op: WriteOp }[], log: Logger, counts: { skipped: number }) {
  if (ops.length === 0) return
  try {
    await collection.bulkWrite(ops.map((o) => o.op))
  } catch (error) {
    if (!(error instanceof StoreError) || error.transient) throw error
    for (const { id, op } of ops) {
      try {
        await collection.bulkWrite([op])
      } catch (e) {
        if (!(e instanceof StoreError) || e.transient) throw e
        counts.skipped++
        log.warn('document refused by MongoDB; skipped', { id, error: e.message })
      }
    }
  }
}

function byAggregate(events: CdcEvent[]): Map<string, CdcEvent[]> {
  const out = new Map<string, CdcEvent[]>()
  for (const e of events) {
    let list = out.get(e.aggregate.id)
    if (!list) out.set(e.aggregate.id, (list = []))
    list.push(e)
  }
  return out
}

async function stateVersions(store: Store, collection: string, events: CdcEvent[]): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  for (const id of new Set(events.map((e) => e.aggregate.id))) {
    const doc = await store.collection<StateDoc & Doc>(collection).findOne({ _id: id })
    if (doc) out.set(id, doc.version)
  }
  return out
}
