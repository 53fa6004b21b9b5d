// The set of tracked tables, read from cdc.tracked (written by `cdc migrate` / `track` / `untrack`) and re-read every
// second, so every running role follows a newly tracked or untracked table without a restart: the consumer
// subscribes to its topic, serve answers its history, the console lists it. One watcher per process (Runtime).
import listSql from '../sql/tracking/list.sql' with { type: 'text' }
import { isDbError, type Db } from './clients/postgres.ts'
import type { Logger } from './log.ts'
import { parseTableName, storageName } from './tables.ts'

export interface TrackedTable {
  /** Canonical name (`orders`, `app.orders`, `app."LineItems"`): the envelope's aggregate type. */
  aggregateType: string
  schema: string
  name: string
  /** Its name in topics and MongoDB collections (see tables.ts). */
  storage: string
  keyColumns: string[]
  /** The table's columns now (empty once it is dropped). */
  columns: string[]
  mode: string
  /** False once untracked: capture stopped, history kept. */
  active: boolean
  /** Column options the capture was generated with (exclude, mask, …). */
  spec: { mask?: string[]; exclude?: string[] }
  trackedAt: string
  untrackedAt: string | null
}

export interface TrackedSet {
  /** Every table tracked now or before, by canonical name. */
  list(): TrackedTable[]
  get(aggregateType: string): TrackedTable | undefined
  /** Reads cdc.tracked now (a caller that met an unknown name asks again before answering 404). */
  refresh(): Promise<TrackedTable[]>
  /** Called after each change of the set (a listener should be idempotent: it may see the same set twice). */
  onChange(fn: (tables: TrackedTable[]) => void): () => void
  stop(): void
}

export const TRACKED_REFRESH_MS = 1_000
/** cdc schema or table missing: not migrated yet, so nothing is tracked. */
const NOT_MIGRATED = new Set(['3F000', '42P01'])

interface Row {
  aggregate_type: string
  schema_name: string
  table_name: string
  key_columns: string[]
  columns: string[]
  mode: string
  active: boolean
  spec: TrackedTable['spec']
  tracked_at: string
  untracked_at: string | null
}

export async function readTracked(db: Db): Promise<TrackedTable[]> {
  const rows = await db.query<Row>(listSql).catch((error) => {
    if (isDbError(error) && error.code && NOT_MIGRATED.has(error.code)) return [] as Row[]
    throw error
  })
  return rows.map((r) => ({
    aggregateType: r.aggregate_type,
    schema: r.schema_name,
    name: r.table_name,
    storage: storageName(parseTableName(r.aggregate_type)),
    keyColumns: r.key_columns,
    columns: r.columns,
    mode: r.mode,
    active: r.active,
    spec: r.spec ?? {},
    trackedAt: r.tracked_at,
    untrackedAt: r.untracked_at,
  }))
}

export function watchTracked(db: () => Db, log: Logger, intervalMs = TRACKED_REFRESH_MS): TrackedSet {
  let tables: TrackedTable[] = []
  let signature = ''
  const listeners = new Set<(tables: TrackedTable[]) => void>()
  let inFlight: Promise<TrackedTable[]> | undefined

  const refresh = () =>
    (inFlight ??= readTracked(db())
      .then((next) => {
        const sig = JSON.stringify(next.map((t) => [t.aggregateType, t.active, t.mode, t.keyColumns, t.spec]))
        tables = next
        if (sig !== signature) {
          signature = sig
          log.debug('tracked tables', { tables: next.filter((t) => t.active).map((t) => t.aggregateType) })
          for (const fn of listeners) fn(next)
        }
        return next
      })
      .finally(() => (inFlight = undefined)))

  const timer = setInterval(() => {
    refresh().catch((error) => log.debug('reading the tracked tables failed', { error }))
  }, intervalMs)
  void refresh().catch((error) => log.debug('reading the tracked tables failed', { error }))

  return {
    list: () => tables,
    get: (name) => tables.find((t) => t.aggregateType === name),
    refresh,
    onChange(fn) {
      listeners.add(fn)
      return () => listeners.delete(fn)
    },
    stop: () => clearInterval(timer),
  }
}
