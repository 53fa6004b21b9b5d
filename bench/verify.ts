// The completeness check shared by the chaos run and the soak run, against cdc.event_store as the truth: every
// committed event is in the MongoDB history exactly once, versions are gapless per aggregate (in the event store and in
// the history), the read model equals the PostgreSQL rows, and the DLQ is empty.
import { ident, type Db } from '../src/clients/postgres.ts'
import type { Store } from '../src/clients/mongo.ts'
import type { KafkaClient } from '../src/clients/kafka.ts'
import type { Config } from '../src/config.ts'
import { topicFor } from '../src/topics.ts'
import { dlqTopic } from '../src/events.ts'

/**
 * The time limit of the check's MongoDB reads: whole history collections, read after a long run on a loaded machine
 * (the 100,000-event chaos runs' reads outlasted the product's 30 s operation limit).
 */
export const VERIFY_TIMEOUT_MS = 600_000

export interface Verdict {
  ok: boolean
  written: number
  verified: number
  missing: number
  duplicates: number
  gaps: number
  stateChecked: number
  stateMismatches: number
  dlqDepth: number
  outboxLeft: number
  /** The first problems found, for the report. */
  problems: string[]
}

interface Row {
  id: string
  aggregate_type: string
  aggregate_id: string
  version: number
}

export async function verifyPipeline(deps: { config: Config; db: Db; store: Store; kafka: KafkaClient; groupId: string }): Promise<Verdict> {
  const { config, db, store, kafka } = deps
  const tables = config.capture.tracked
  const events = await db.query<Row>('select id::text, aggregate_type, aggregate_id, version from cdc.event_store order by aggregate_type, aggregate_id, version')
  const problems: string[] = []
  const v: Verdict = {
    ok: false,
    written: events.length,
    verified: 0,
    missing: 0,
    duplicates: 0,
    gaps: 0,
    stateChecked: 0,
    stateMismatches: 0,
    dlqDepth: 0,
    outboxLeft: 0,
    problems,
  }
  for (const table of tables) {
    const docs = await store.collection(`${table}_history`).find({}, { projection: { _id: 1, version: 1, aggregate: 1 } })
    const byId = new Map<string, number>()
    for (const d of docs) byId.set(String(d._id), (byId.get(String(d._id)) ?? 0) + 1)
    const seenVersions = new Map<string, number[]>()
    for (const d of docs) {
      const key = String((d.aggregate as { id: string }).id)
      let list = seenVersions.get(key)
      if (!list) seenVersions.set(key, (list = []))
      list.push(Number(d.version))
    }
    for (const [aggregate, versions] of seenVersions) {
      versions.sort((a, b) => a - b)
      if (new Set(versions).size !== versions.length) {
        v.duplicates++
        problems.push(`${table}/${aggregate}: a version stored twice`)
      }
      versions.forEach((version, i) => {
        if (version !== i + 1) {
          v.gaps++
          if (v.gaps <= 10) problems.push(`${table}/${aggregate}: history versions not gapless (${versions.join(',')})`)
        }
      })
    }
    const expected = events.filter((e) => e.aggregate_type === table)
    for (const e of expected) {
      const n = byId.get(e.id) ?? 0
      if (n === 1) v.verified++
      else if (n === 0) {
        v.missing++
        if (v.missing <= 10) problems.push(`${table}/${e.aggregate_id} v${e.version}: event ${e.id} missing from history`)
      } else v.duplicates++
    }
    if (docs.length > expected.length) problems.push(`${table}: ${docs.length - expected.length} history documents not in the event store`)
  }
  // Versions in the event store itself are gapless per aggregate.
  let prev: Row | undefined
  for (const e of events) {
    const same = prev && prev.aggregate_type === e.aggregate_type && prev.aggregate_id === e.aggregate_id
    if ((same && e.version !== prev!.version + 1) || (!same && e.version !== 1)) {
      v.gaps++
      if (v.gaps <= 10) problems.push(`event store ${e.aggregate_type}/${e.aggregate_id}: version ${e.version} after ${same ? prev!.version : 'nothing'}`)
    }
    prev = e
  }
  // The read model equals the PostgreSQL rows; an aggregate root's state also holds its children's current rows.
  for (const table of tables) {
    const rows = await db.query<{ id: string; row: Record<string, unknown> }>(`select id::text as id, to_jsonb(t) as row from ${ident(table)} t`)
    const children = config.capture.roots[table]?.children ?? []
    for (const child of children) {
      const lines = await db.query<{ parent: string; row: Record<string, unknown> }>(
        `select ${ident(child.foreignKey)}::text as parent, to_jsonb(c) as row from ${ident(child.table)} c order by c.id`,
      )
      const byParent = Map.groupBy(lines, (l) => l.parent)
      for (const r of rows) r.row[child.table] = (byParent.get(r.id) ?? []).map((l) => l.row)
    }
    const states = await store.collection(`${table}_state`).find({})
    const stateById = new Map(states.map((s) => [String(s._id), s]))
    for (const r of rows) {
      v.stateChecked++
      const s = stateById.get(r.id)
      if (!s || s.deleted || JSON.stringify(sortKeys(ownColumns(s.row, children))) !== JSON.stringify(sortKeys(r.row))) {
        v.stateMismatches++
        if (v.stateMismatches <= 10) problems.push(`${table}/${r.id}: state ${s ? JSON.stringify(s.row) : 'missing'} ≠ row ${JSON.stringify(r.row)}`)
      }
    }
    const live = new Set(rows.map((r) => r.id))
    for (const s of states) {
      if (!s.deleted && !live.has(String(s._id))) {
        v.stateMismatches++
        problems.push(`${table}/${String(s._id)}: state says live, row is gone`)
      }
    }
  }
  // The DLQ is empty: a fresh group's lag on a DLQ topic is its end offset.
  for (const table of tables) {
    const lag = await kafka.lag(deps.groupId, dlqTopic(topicFor(config, table, ''))).catch(() => [])
    for (const p of lag) v.dlqDepth += p.end
  }
  if (v.dlqDepth > 0) problems.push(`DLQ holds ${v.dlqDepth} messages`)
  const [outbox] = await db.query<{ n: number }>('select count(*)::int as n from cdc.outbox').catch(() => [{ n: 0 }])
  v.outboxLeft = outbox?.n ?? 0
  v.ok = v.missing === 0 && v.duplicates === 0 && v.gaps === 0 && v.stateMismatches === 0 && v.dlqDepth === 0 && problems.length === 0
  return v
}

/** The figure rows every run report shows. */
export function verdictRows(v: Verdict): string[] {
  return [
    `| events written (cdc.event_store) | ${v.written} |`,
    `| events verified in history exactly once | ${v.verified} |`,
    `| missing / duplicated | ${v.missing} / ${v.duplicates} |`,
    `| version gaps | ${v.gaps} |`,
    `| state documents checked / mismatched | ${v.stateChecked} / ${v.stateMismatches} |`,
    `| DLQ depth / outbox left | ${v.dlqDepth} / ${v.outboxLeft} |`,
  ]
}

/** A root's state without the looked-up copies inside its children (product_id → "product"): those are as they were. */
function ownColumns(row: unknown, children: { table: string; lookups: { column: string }[] }[]): unknown {
  if (!row || typeof row !== 'object' || children.length === 0) return row
  const out: Record<string, unknown> = { ...(row as Record<string, unknown>) }
  for (const child of children) {
    const lookups = child.lookups.map((l) => l.column.replace(/_id$/, ''))
    const list = out[child.table]
    if (Array.isArray(list)) out[child.table] = list.map((e: Record<string, unknown>) => Object.fromEntries(Object.entries(e).filter(([k]) => !lookups.includes(k))))
  }
  return out
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]))
  }
  return value
}
