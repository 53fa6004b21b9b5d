// WAL mode: logical replication (pgoutput) from a persistent slot. Outbox inserts ('I' on cdc.outbox: the event id,
// whose envelope is read from cdc.event_store before publishing) and, in capture.mode "emit", transactional 'cdc'
// messages ('M', the envelope itself) are collected per DB transaction (Begin … Commit); whole transactions are
// published in one Kafka transaction, then their outbox rows are deleted, and only then is the commit's end LSN
// confirmed to the slot. A crash anywhere replays from the last confirmed LSN: duplicates, never gaps.
import findPublicationSql from '../../sql/relay/find-publication.sql' with { type: 'text' }
import findSlotSql from '../../sql/relay/find-slot.sql' with { type: 'text' }
import createSlotSql from '../../sql/relay/create-slot.sql' with { type: 'text' }
import backfillStateSql from '../../sql/relay/backfill-state.sql' with { type: 'text' }
import backfillBeginSql from '../../sql/relay/backfill-begin.sql' with { type: 'text' }
import backfillBoundSql from '../../sql/relay/backfill-bound.sql' with { type: 'text' }
import backfillFindSql from '../../sql/relay/backfill-find.sql' with { type: 'text' }
import backfillDoneSql from '../../sql/relay/backfill-done.sql' with { type: 'text' }
import deletePublishedSql from '../../sql/relay/delete-published.sql' with { type: 'text' }
import eventsByIdSql from '../../sql/relay/events-by-id.sql' with { type: 'text' }
import { ident, isDbError, type Db } from '../clients/postgres.ts'
import { sleep } from './backoff.ts'
import { relayMetrics } from './metrics.ts'
import { drainOutbox, type RelaySession } from './poll.ts'
import { fromEventRow, type EventRow, type Outgoing } from './publish.ts'
import { formatLsn } from './pgoutput.ts'
import { runSlot, type StreamMode } from './stream.ts'

/** Prefix of the envelopes the capture trigger emits with pg_logical_emit_message in capture.mode "emit". */
export const EMIT_PREFIX = 'cdc'
const DUPLICATE_OBJECT = '42710'
/** How long to wait for a decoded transaction's events to become visible (see loadEvents). */
const VISIBLE_WITHIN_MS = 5000

export async function runWal(s: RelaySession): Promise<void> {
  await runSlot(s, 'wal', { prepare: () => prepare(s), mode: () => walMode(s) })
}

/**
 * Publication and persistent slot, created when missing. A new slot starts after the rows already in the outbox: those
 * are drained the poll way, a duty recorded before the slot is created and cleared once done, so a crash in between
 * repeats it (rows committed around the slot's creation may be published twice, never lost).
 */
async function prepare(s: RelaySession) {
  const db = s.rt.relayDb()
  const { slot, publication } = s.rt.config.relay
  if ((await db.query(findPublicationSql, [publication])).length === 0) {
    await db
      .query(`create publication ${ident(publication)} for table cdc.outbox with (publish = 'insert')`)
      .catch((error) => {
        if (!isDbError(error, DUPLICATE_OBJECT)) throw error
      })
    s.log.info('publication created', { publication })
  }
  const [existing] = await db.query<{ plugin: string }>(findSlotSql, [slot])
  if (existing && existing.plugin !== 'pgoutput') throw new Error(`replication slot ${slot} uses ${existing.plugin}, not pgoutput`)
  await db.query(backfillStateSql)
  if (!existing) {
    await db.query(backfillBeginSql, [slot])
    const [created] = await db.query<{ lsn: string }>(createSlotSql, [slot]).catch((error) => {
      if (isDbError(error, DUPLICATE_OBJECT)) return []
      throw error
    })
    if (created) s.log.info('replication slot created', { slot, lsn: created.lsn })
    await db.query(backfillBoundSql, [slot])
  }
  const [backfill] = await db.query<{ upto: number }>(backfillFindSql, [slot])
  if (backfill) {
    const drained = await drainOutbox(s, 'wal', backfill.upto)
    if (s.signal.aborted) return
    await db.query(backfillDoneSql, [slot])
    s.log.info('outbox rows older than the slot published', { events: drained, upToSeq: backfill.upto })
  }
}

/** What wal mode collects per transaction: outbox rows (event id + seq) and, in capture.mode "emit", envelopes. */
interface Item {
  event: Outgoing | string
  seq?: number
}

function walMode(s: RelaySession): StreamMode<Item> {
  return {
    name: 'wal',
    collect(tx, msg, relations) {
      if (msg.tag === 'insert') {
        const rel = relations.get(msg.relationId)
        if (rel?.schema !== 'cdc' || rel.table !== 'outbox') return
        const row = Object.fromEntries(rel.columns.map((c, i) => [c, msg.values[i] ?? null]))
        tx.items.push({ event: row.event_id!, seq: Number(row.seq) })
      } else if (msg.tag === 'message' && msg.prefix === EMIT_PREFIX && msg.transactional) {
        const event = fromEmitted(msg.content.toString('utf8'))
        if (event) tx.items.push({ event })
        // Unroutable (not an envelope): a capture bug, not data; stopping the stream on it would stop everything.
        else {
          relayMetrics.errors.inc({ mode: 'wal', stage: 'decode' })
          s.log.error('emitted message is not an event envelope; skipped', { lsn: formatLsn(msg.lsn), bytes: msg.content.length })
        }
      }
    },
    materialize: (batch, signal) => loadEvents(s.rt.relayDb(), batch.flatMap((t) => t.items.map((i) => i.event)), signal),
    async settle(batch) {
      const seqs = batch.flatMap((t) => t.items.flatMap((i) => (i.seq === undefined ? [] : [i.seq])))
      if (seqs.length) await s.rt.relayDb().query(deletePublishedSql, [seqs])
    },
  }
}

/**
 * The outbox rows' events (by id) from the event store, in order. The stream can deliver a transaction a moment
 * before a new snapshot sees it committed (its commit record is flushed before it leaves the list of running
 * transactions), so events not visible yet are asked for again; an event still missing after that is an error
 * (the batch is retried, nothing is skipped).
 */
async function loadEvents(db: Db, items: (Outgoing | string)[], signal: AbortSignal): Promise<Outgoing[]> {
  const wanted = items.filter((i): i is string => typeof i === 'string')
  const found = new Map<string, Outgoing>()
  const deadline = Date.now() + VISIBLE_WITHIN_MS
  for (let pause = 1; ; pause = Math.min(pause * 2, 100)) {
    const missing = wanted.filter((id) => !found.has(id))
    if (missing.length === 0) break
    const rows = await db.query<EventRow>(eventsByIdSql, [missing])
    for (const r of rows) found.set(r.event_id, fromEventRow(r))
    if (rows.length === missing.length) break
    if (Date.now() > deadline || signal.aborted) throw new Error(`${missing.length - rows.length} outbox event(s) not found in cdc.event_store`)
    await sleep(pause, signal)
  }
  return items.map((i) => (typeof i === 'string' ? found.get(i)! : i))
}

/** An envelope emitted by the capture trigger (capture.mode "emit"): routing fields come from the envelope itself. */
function fromEmitted(text: string): Outgoing | undefined {
  try {
    const e = JSON.parse(text) as { id?: unknown; type?: unknown; version?: unknown; aggregate?: { type?: unknown; id?: unknown } }
    const { id, type, version, aggregate } = e
    if (typeof id !== 'string' || typeof type !== 'string' || typeof version !== 'number') return undefined
    if (typeof aggregate?.type !== 'string' || typeof aggregate.id !== 'string') return undefined
    return { eventId: id, aggregateType: aggregate.type, aggregateId: aggregate.id, version, type, value: text }
  } catch {
    return undefined
  }
}
