// `<table>_state`, the read model: the latest image per aggregate. It only ever moves forward through contiguous
// versions, so replays and out-of-order redrives cannot roll it back, and a gap holds it until the gap closes.
import { StoreError, type Doc, type IndexSpec, type Store, type WriteOp } from '../clients/mongo.ts'
import type { CdcEvent } from '../events.ts'
import type { Logger } from '../log.ts'
import { storageNameOf } from '../tables.ts'
import type { GapDoc, Gaps, Place } from './gaps.ts'
import { historyAfter } from './history.ts'
import * as metrics from './metrics.ts'

export const stateCollection = (table: string) => `${storageNameOf(table)}_state`

export interface StateDoc {
  [field: string]: unknown
  _id: string
  aggregate: { type: string; id: string }
  version: number
  deleted: boolean
  /** The latest after image, or the last image before deletion. */
  row: Record<string, unknown> | null
  occurredAt: string
  eventId: string
  /** The row's values as find keys (`findKeys`); stored, never served. */
  find?: string[]
}

/** Longer values get no find key (not findable by value): index keys stay small on both servers. */
export const FIND_VALUE_MAX = 200

/** The find key of one column's value: unambiguous for any column name or value. */
export const findKey = (column: string, value: string) => JSON.stringify([column, value])

/**
 * The console's find-by-value as one equality on an indexed top-level array (`{find: findKey(col, value)}`): a
 * multikey index on MongoDB, a GIN index on FerretDB (which pushes the equality down as jsonb containment, and an
 * array contains its elements), where a filter on `row.<column>` would read the whole collection. One key per
 * top-level string, number or boolean column of the row (numbers and booleans as their text).
 */
export function findKeys(row: Record<string, unknown> | null): string[] {
  const out: string[] = []
  for (const [column, value] of Object.entries(row ?? {})) {
    const text = typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : undefined
    if (text !== undefined && text.length <= FIND_VALUE_MAX) out.push(findKey(column, text))
  }
  return out
}

export const STATE_INDEXES: IndexSpec[] = [{ key: { find: 1 }, name: 'find' }]

/** Idempotent; one index per call (see ensureHistoryIndexes). `named`: as there. */
export async function ensureStateIndexes(store: Store, tables: string[], named = stateCollection): Promise<void> {
  for (const table of tables) {
    for (const index of STATE_INDEXES) await store.collection(named(table)).createIndexes([index])
  }
}

/** Settle passes before an aggregate whose state keeps moving under us is left to the gap sweep. */
const SETTLE_ATTEMPTS = 4

/** Reads per id at a time, each an `_id` equality (FerretDB scans the whole collection for `$in`). */
const READ_CONCURRENCY = 8

/** The states of these aggregates (absent ones are missing from the map): one indexed `_id` lookup each. */
export async function readStates(store: Store, table: string, ids: string[]): Promise<Map<string, StateDoc>> {
  const collection = store.collection<StateDoc>(stateCollection(table))
  const out = new Map<string, StateDoc>()
  let next = 0
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next++]!
      const doc = await collection.findOne({ _id: id })
      if (doc) out.set(id, doc)
    }
  }
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, ids.length) }, worker))
  return out
}

/** The $set that moves a state through `events` (contiguous, ascending, all newer than the state). */
export function advance(events: CdcEvent[], exists: boolean): Doc {
  const last = events.at(-1)!
  const set: Doc = { aggregate: last.aggregate, version: last.version, occurredAt: last.occurredAt, eventId: last.id }
  // Application events (op "m") carry no image: the row stays what the last row change made it.
  const imaged = events.findLast((e) => e.op === 'd' || e.after !== null)
  if (imaged) {
    set.deleted = imaged.op === 'd'
    set.row = imaged.op === 'd' ? imaged.before : imaged.after
    set.find = findKeys(set.row as Record<string, unknown> | null)
  } else if (!exists) {
    set.deleted = false
    set.row = null
    set.find = []
  }
  return set
}

/**
 * The write of one aggregate: guarded by the version it was computed from, so a concurrent or replayed write can
 * only make it match nothing (then the state is already at least as new) or hit a duplicate key (another insert won).
 */
function updateOp(aggregateId: string, current: number | undefined, events: CdcEvent[]): WriteOp {
  const $set = advance(events, current !== undefined)
  // A first state is an insert (batched by the server like insertMany; updates are far slower on FerretDB).
  if (current === undefined) return { insertOne: { document: { _id: aggregateId, ...$set } } }
  return { updateOne: { filter: { _id: aggregateId, version: current }, update: { $set } } }
}

/** The events newer than `current` if they continue it without a hole, else undefined. */
function contiguousAfter(current: number, events: CdcEvent[]): CdcEvent[] | undefined {
  const newer = events.filter((e) => e.version > current)
  return newer.every((e, i) => e.version === current + 1 + i) ? newer : undefined
}

/** What a batch needs of the state writer. */
export interface StateApplier {
  apply(table: string, events: CdcEvent[]): Promise<ApplyResult>
}

export interface ApplyResult {
  /** Aggregates whose state write MongoDB rejected for good, with the error. */
  rejected: Map<string, string>
}

export class StateWriter {
  constructor(
    private readonly store: Store,
    private readonly gaps: Gaps,
    private readonly log: Logger,
  ) {}

  /**
   * Moves the states of one table through events that are already in its history: one bulk write, guessing that each
   * state stands right before its first event here (an in-order stream). The version guards check that guess; the
   * aggregates of a write where it failed (an update matched nothing, an insert found a state) are read and redone.
   */
  async apply(table: string, events: CdcEvent[], where: Place): Promise<ApplyResult> {
    const byAggregate = new Map<string, CdcEvent[]>()
    for (const e of events) {
      let list = byAggregate.get(e.aggregate.id)
      if (!list) byAggregate.set(e.aggregate.id, (list = []))
      if (!list.some((x) => x.version === e.version)) list.push(e)
    }
    for (const list of byAggregate.values()) list.sort((a, b) => a.version - b.version)
    const rejected = new Map<string, string>()
    const slow: string[] = []
    const fast = [...byAggregate.keys()].filter((id) => {
      if (!this.gaps.has(table, id)) return true
      slow.push(id)
      return false
    })
    // A guess costs no read; on FerretDB a read of many states by id scans the whole collection.
    const guessed = new Map<string, number>()
    for (const id of fast) {
      const first = byAggregate.get(id)![0]!.version
      if (first > 1) guessed.set(id, first - 1)
    }
    for (let attempt = 0; fast.length > 0; attempt++) {
      const versions = attempt === 0 ? guessed : await this.versions(table, fast)
      const ops: { id: string; op: WriteOp }[] = []
      const unsure: string[] = []
      for (const id of fast) {
        const current = versions.get(id)
        const run = contiguousAfter(current ?? 0, byAggregate.get(id)!)
        if (run === undefined) (attempt === 0 ? unsure : slow).push(id)
        else if (run.length > 0) ops.push({ id, op: updateOp(id, current, run) })
      }
      const raced = await this.write(table, ops, rejected)
      // A wrong guess, or another writer that moved a state meanwhile (FerretDB may also skip the ops after a
      // duplicate): redo those from a fresh read; the version guards make the redo harmless.
      if (raced.length === 0 && unsure.length === 0) break
      fast.splice(0, fast.length, ...raced, ...unsure)
      // still moving under us: the slow path settles them (and records a gap if even that keeps losing)
      if (attempt >= 3) {
        slow.push(...fast)
        break
      }
    }
    if (slow.length > 0) await this.settle(table, [...new Set(slow)], where, rejected)
    return { rejected }
  }

  /** The writer for one partition's batches (gaps they find belong to that partition). */
  at(where: Place): StateApplier {
    return { apply: (table, events) => this.apply(table, events, where) }
  }

  /**
   * Re-checks an open gap by reading its state by `_id` (index-served): unchanged means the missing version has not
   * come through another partition or process, so the check backs off; moved means the history is read and applied.
   */
  async recheck(gap: GapDoc, where: Place): Promise<void> {
    const state = await this.store.collection<StateDoc>(stateCollection(gap.table)).findOne({ _id: gap.aggregateId })
    if ((state?.version ?? 0) === gap.stateVersion) {
      metrics.gapChecks.inc({ result: 'waiting' })
      this.gaps.backOff(gap.table, gap.aggregateId)
      return
    }
    metrics.gapChecks.inc({ result: 'moved' })
    await this.settle(gap.table, [gap.aggregateId], where)
  }

  /**
   * The slow path for aggregates with a (possible) gap: read the state and the history after it, apply the
   * contiguous part, and record what still waits. A write that another writer beat (it moved the state between our
   * read and our guarded write: e.g. the missing version's own batch, from another topic) is settled again from a
   * fresh read; one that keeps losing is recorded as a gap, so the sweep settles it once the state stops moving.
   */
  async settle(table: string, ids: string[], where: Place, rejected = new Map<string, string>()): Promise<void> {
    let todo = [...new Set(ids)]
    for (let attempt = 1; todo.length > 0; attempt++) todo = await this.settleOnce(table, todo, where, rejected, attempt >= SETTLE_ATTEMPTS)
  }

  /** One settle pass; returns the aggregates whose write another writer beat (none on the last pass). */
  private async settleOnce(table: string, ids: string[], where: Place, rejected: Map<string, string>, last: boolean): Promise<string[]> {
    const versions = await this.versions(table, ids)
    const ops: { id: string; op: WriteOp }[] = []
    const seen = new Map<string, { base: number; upTo: number }>()
    for (const id of ids) {
      const current = versions.get(id)
      const waiting = await historyAfter(this.store, table, id, current ?? 0)
      const base = current ?? 0
      let run = 0
      while (run < waiting.length && waiting[run]!.version === base + 1 + run) run++
      if (run > 0) {
        ops.push({ id, op: updateOp(id, current, waiting.slice(0, run)) })
        seen.set(id, { base, upTo: waiting.at(-1)!.version })
      }
      const held = base + run
      if (run < waiting.length) {
        const seenUpTo = waiting.at(-1)!.version
        if (await this.gaps.mark(table, id, held, seenUpTo, where)) {
          metrics.gaps.inc({ table })
          this.log.warn('version gap: state held back until the missing version arrives', {
            table,
            aggregateId: id,
            stateVersion: held,
            missing: held + 1,
            next: waiting[run]!.version,
            eventId: waiting[run]!.id,
          })
        }
      } else if (this.gaps.has(table, id)) {
        await this.gaps.clear(table, id)
        this.log.info('version gap closed', { table, aggregateId: id, version: held })
      }
    }
    const raced = await this.write(table, ops, rejected)
    if (!last) return raced
    for (const id of raced) {
      const { base, upTo } = seen.get(id)!
      // held at what we read: the sweep finds the state moved and settles it again
      if (await this.gaps.mark(table, id, base, upTo, where)) metrics.gaps.inc({ table })
    }
    return []
  }

  private async versions(table: string, ids: string[]): Promise<Map<string, number>> {
    const states = await readStates(this.store, table, ids)
    return new Map([...states].map(([id, d]) => [id, d.version]))
  }

  /**
   * Writes the ops; returns the aggregates to redo (a duplicate key, or a guarded update that matched nothing: the
   * totals do not say which, so all of them); a rejected op is retried alone to find the culprit.
   */
  private async write(table: string, ops: { id: string; op: WriteOp }[], rejected: Map<string, string>): Promise<string[]> {
    if (ops.length === 0) return []
    const collection = this.store.collection(stateCollection(table))
    const missed = (list: WriteOp[], r: { duplicates: number[]; matched: number }) =>
      r.duplicates.length > 0 || r.matched < list.filter((op) => 'updateOne' in op).length
    try {
      const list = ops.map((o) => o.op)
      return missed(list, await collection.bulkWrite(list)) ? ops.map((o) => o.id) : []
    } catch (error) {
      if (!(error instanceof StoreError) || error.transient) throw error
      const redo: string[] = []
      for (const { id, op } of ops) {
        try {
          if (missed([op], await collection.bulkWrite([op]))) redo.push(id)
        } catch (e) {
          if (!(e instanceof StoreError) || e.transient) throw e
          rejected.set(id, e.message)
        }
      }
      return redo
    }
  }
}
