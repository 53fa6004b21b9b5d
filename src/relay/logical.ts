// Logical mode (capture.mode = "logical"): no row trigger on the tracked tables. The leader decodes their INSERT,
// UPDATE and DELETE from pgoutput on the persistent slot, joins each with the who/why its transaction sent ('cdc.ctx'
// messages), and applies whole transactions in commit order with cdc.logical_apply: the tables' generated capture
// code runs with the decoded row images (before images and unchanged TOASTed values from the stored previous
// image), assigns gapless versions and ids derived from the commit position, and writes cdc.event_store — all before
// the Kafka commit, and idempotent on replay (the slot's applied LSN is recorded in the same transaction).
import applySql from '../../sql/relay/logical-apply.sql' with { type: 'text' }
import eventsSql from '../../sql/relay/logical-events.sql' with { type: 'text' }
import progressSql from '../../sql/relay/logical-progress.sql' with { type: 'text' }
import slotRecordSql from '../../sql/relay/logical-slot-record.sql' with { type: 'text' }
import slotStatsSql from '../../sql/relay/slot-stats.sql' with { type: 'text' }
import { ensureLogicalSlot } from '../capture/slot.ts'
import { relayMetrics } from './metrics.ts'
import { formatLsn, type PgOutput, type Relation, type Tuple } from './pgoutput.ts'
import type { RelaySession } from './poll.ts'
import { fromEventRow, type EventRow } from './publish.ts'
import { runSlot, type StreamMode, type StreamTx } from './stream.ts'

/** Message prefixes the logical-mode SQL emits (sql/definitions/logical.sql). */
const CONTEXT_PREFIX = 'cdc.ctx'
const APPEND_PREFIX = 'cdc.append'
const DOCUMENT_PREFIX = 'cdc.doc'
const JSON_TYPES = new Set([114 /* json */, 3802 /* jsonb */])

/** One decoded item of a source transaction, as cdc.logical_apply takes it (see its comment). */
type Item =
  | { k: 'ctx'; v: unknown[] }
  | { k: 'a' | 'doc'; a: unknown }
  | { k: 'c' | 'u' | 'd'; s: string; t: string; key: string; okey?: string; new?: Row; old?: Row; full?: boolean; u?: string[] }

type Row = Record<string, unknown>

/** The slot is gone or invalidated: events may be missing, so the relay stops until an operator recovers. */
export class SlotLost extends Error {}

export async function runLogical(s: RelaySession): Promise<void> {
  await runSlot(s, 'logical', {
    prepare: () => prepare(s),
    mode: () => logicalMode(s),
    async stuck(error) {
      if (!(error instanceof SlotLost) && !(await slotLost(s))) return false
      relayMetrics.slotLost.set(1, { slot: s.rt.config.relay.slot })
      s.log.error('replication slot lost: changes since its last confirmed position may be missing; the relay stops until it is recovered (docs/logical.md: "A lost slot")', {
        slot: s.rt.config.relay.slot,
      })
      return true
    },
  })
}

/** Publication with every tracked table, and the persistent slot (never silently re-created once lost). */
async function prepare(s: RelaySession) {
  const db = s.rt.db()
  const { slot, publication } = s.rt.config.relay
  if ((await ensureLogicalSlot(db, slot, publication, s.log)) === 'lost') throw new SlotLost(`replication slot ${slot} is lost`)
  relayMetrics.slotLost.set(0, { slot })
}

/** Whether the server now reports the slot missing or invalidated (a failed stream is then not retried blindly). */
async function slotLost(s: RelaySession): Promise<boolean> {
  const db = s.rt.db()
  const slot = s.rt.config.relay.slot
  const rows = await db.query<{ wal_status: string | null }>(slotStatsSql, [slot]).catch(() => undefined)
  if (!rows || (rows.length > 0 && rows[0]!.wal_status !== 'lost')) return false
  await db.query(slotRecordSql, [slot, 'lost']).catch(() => {})
  return true
}

function logicalMode(s: RelaySession): StreamMode<Item> {
  const db = s.rt.db()
  const slot = s.rt.config.relay.slot
  // what the parts of a large transaction applied so far have seen: its contexts and how many items went before
  const sent = new WeakMap<StreamTx<Item>, Contexts>()
  const apply = async (input: unknown[]) => (await db.query<EventRow>(applySql, [slot, JSON.stringify(input)])).map(fromEventRow)
  return {
    name: 'logical',
    collect(tx, msg, relations) {
      const item = decode(msg, relations)
      if (item) tx.items.push(item)
      else if (msg.tag === 'truncate') {
        // Refused by the tracked tables' TRUNCATE trigger; only a session that bypasses triggers gets here.
        relayMetrics.errors.inc({ mode: 'logical', stage: 'truncate' })
        const tables = msg.relationIds.map((id) => relations.get(id)).map((r) => (r ? `${r.schema}.${r.table}` : '?'))
        s.log.error('TRUNCATE of a tracked table decoded: it is not in the history (TRUNCATE is refused on tracked tables; re-snapshot them)', {
          tables,
          lsn: formatLsn(tx.commitLsn),
        })
      }
    },
    materialize: (batch) => apply(batch.map((tx) => applyInput(tx, tx.items, new Contexts(tx)))),
    parts: {
      async progress(tx) {
        const [row] = await db.query<{ applied: boolean; events: number }>(progressSql, [slot, formatLsn(tx.commitLsn)])
        return row ?? { applied: false, events: 0 }
      },
      async readBack(tx, from, count) {
        const rows = await db.query<EventRow>(eventsSql, [formatLsn(tx.commitLsn), tx.commitTime.toISOString(), from, count])
        return rows.map(fromEventRow)
      },
      apply(tx, items, last) {
        const contexts = sent.get(tx) ?? new Contexts(tx)
        sent.set(tx, contexts)
        const first = contexts.items
        const input = applyInput(tx, items, contexts)
        return apply([{ ...input, part: { first, last } }])
      },
    },
    heartbeat() {
      void db.query<{ lag_bytes: number; retained_bytes: number; confirmed_lsn: number; wal_status: string }>(slotStatsSql, [slot]).then(
        ([row]) => {
          if (!row) return
          // (lag bytes and activity: sampled for every slot-based relay in index.ts)
          relayMetrics.slotRetainedBytes.set(row.retained_bytes ?? 0, { slot })
          relayMetrics.slotConfirmedLsn.set(row.confirmed_lsn ?? 0, { slot })
        },
        () => {},
      )
    },
  }
}

/** A decoded pgoutput message as an item of its transaction (undefined: not ours). */
function decode(msg: PgOutput, relations: ReadonlyMap<number, Relation>): Item | undefined {
  switch (msg.tag) {
    case 'message': {
      if (!msg.transactional) return undefined
      const body = () => JSON.parse(msg.content.toString('utf8')) as unknown
      if (msg.prefix === CONTEXT_PREFIX) return { k: 'ctx', v: body() as unknown[] }
      if (msg.prefix === APPEND_PREFIX) return { k: 'a', a: body() }
      if (msg.prefix === DOCUMENT_PREFIX) return { k: 'doc', a: body() }
      return undefined
    }
    case 'insert': {
      const rel = relationOf(relations, msg.relationId)
      const row = image(rel, msg.values)
      return { k: 'c', s: rel.schema, t: rel.table, key: keyOf(rel, msg.values), new: row.values }
    }
    case 'update': {
      const rel = relationOf(relations, msg.relationId)
      const row = image(rel, msg.values)
      const key = keyOf(rel, msg.values)
      const okey = msg.old ? keyOf(rel, msg.old) : key
      return {
        k: 'u', s: rel.schema, t: rel.table, key,
        ...(okey !== key && { okey }),
        new: row.values,
        old: msg.old ? (msg.full ? image(rel, msg.old).values : keyImage(rel, msg.old)) : keyImage(rel, msg.values),
        ...(msg.full && { full: true }),
        ...(row.unchanged.length > 0 && { u: row.unchanged }),
      }
    }
    case 'delete': {
      const rel = relationOf(relations, msg.relationId)
      return {
        k: 'd', s: rel.schema, t: rel.table, key: keyOf(rel, msg.old),
        old: msg.full ? image(rel, msg.old).values : keyImage(rel, msg.old),
        ...(msg.full && { full: true }),
      }
    }
    default:
      return undefined
  }
}

function relationOf(relations: ReadonlyMap<number, Relation>, id: number): Relation {
  const rel = relations.get(id)
  // pgoutput sends a Relation before the first change of a relation on every connection: a protocol violation.
  if (!rel) throw new Error(`change for relation ${id} arrived before its Relation message`)
  return rel
}

/** Column → value (json/jsonb parsed, so they populate as JSON), and the columns left out as unchanged TOAST. */
function image(rel: Relation, tuple: Tuple): { values: Row; unchanged: string[] } {
  const values: Row = {}
  const unchanged: string[] = []
  rel.columns.forEach((column, i) => {
    const value = tuple[i]
    if (value === undefined) unchanged.push(column)
    else values[column] = value !== null && JSON_TYPES.has(rel.types[i]!) ? JSON.parse(value) : value
  })
  return { values, unchanged }
}

function keyImage(rel: Relation, tuple: Tuple): Row {
  const values: Row = {}
  rel.columns.forEach((column, i) => {
    if (rel.key[i]) values[column] = tuple[i] ?? null
  })
  return values
}

/** The stored image's key: the identity columns' text values, as a JSON array. */
function keyOf(rel: Relation, tuple: Tuple): string {
  return JSON.stringify(rel.columns.flatMap((_, i) => (rel.key[i] ? [tuple[i] ?? null] : [])))
}

/** The contexts of a source transaction seen so far, and how many of its items (contexts aside) went before. */
class Contexts {
  list: unknown[][] = []
  items = 0
  private xidOf: string | undefined
  constructor(private readonly tx: StreamTx<Item>) {}
  /** The transaction id the events carry: its first context's (xid8), else the 32-bit one Begin gave; fixed once used. */
  get xid(): string {
    this.xidOf ??= this.list[0]?.[0] === undefined ? String(this.tx.xid) : String(this.list[0][0])
    return this.xidOf
  }
}

/** Items of a source transaction as cdc.logical_apply takes them: contexts listed once, each item pointing at its own. */
function applyInput(tx: StreamTx<Item>, items: Item[], contexts: Contexts) {
  const out: unknown[] = []
  for (const item of items) {
    if (item.k === 'ctx') contexts.list.push(item.v)
    else out.push(contexts.list.length > 0 ? { ...item, x: contexts.list.length - 1 } : item)
  }
  contexts.items += out.length
  return { lsn: formatLsn(tx.commitLsn), at: tx.commitTime.toISOString(), xid: contexts.xid, ctx: contexts.list, items: out }
}
