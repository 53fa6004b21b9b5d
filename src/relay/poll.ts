// Poll mode: wake on NOTIFY cdc_outbox (or every relay.pollIntervalMs), read whole transactions from cdc.outbox in seq
// order, publish them in one Kafka transaction, and delete the rows only after Kafka acknowledged the commit.
// Rows are deleted rather than tracked by a high-water mark, so a transaction that commits late (lower seq) is never
// skipped; per aggregate, writers are serialised by row/advisory locks, so seq order is version order.
import fetchBatchSql from '../../sql/relay/fetch-batch.sql' with { type: 'text' }
import deletePublishedSql from '../../sql/relay/delete-published.sql' with { type: 'text' }
import outboxStatsSql from '../../sql/relay/outbox-stats.sql' with { type: 'text' }
import ensureIndexSql from '../../sql/relay/ensure-outbox-index.sql' with { type: 'text' }
import type { Db } from '../clients/postgres.ts'
import type { Logger } from '../log.ts'
import type { Runtime } from '../runtime.ts'
import { Backoff, sleep } from './backoff.ts'
import type { Leadership } from './leader.ts'
import { relayMetrics } from './metrics.ts'
import type { Outgoing, Publisher } from './publish.ts'

export const NOTIFY_CHANNEL = 'cdc_outbox'
const STATS_EVERY_MS = 2000

interface OutboxRow {
  seq: number
  event_id: string
  aggregate_type: string
  aggregate_id: string
  version: number
  type: string
  occurred_at: Date
  payload: string
}

export interface RelaySession {
  rt: Runtime
  log: Logger
  leader: Leadership
  publisher: Publisher
  /** Aborts on stop or when leadership is lost. */
  signal: AbortSignal
}

export interface Batch {
  seqs: number[]
  events: Outgoing[]
}

/** Whole transactions from the head of the outbox (only rows with seq ≤ upTo start a batch; `skip`ped rows never do). */
export async function fetchBatch(db: Db, batchSize: number, upTo = Number.MAX_SAFE_INTEGER, skip: readonly number[] = []): Promise<Batch> {
  const rows = await db.query<OutboxRow>(fetchBatchSql, [batchSize, upTo, skip])
  return {
    seqs: rows.map((r) => r.seq),
    events: rows.map((r) => ({
      eventId: r.event_id,
      aggregateType: r.aggregate_type,
      aggregateId: r.aggregate_id,
      version: r.version,
      type: r.type,
      value: r.payload,
    })),
  }
}

/** Publishes and deletes the outbox rows up to seq `upTo` (wal mode: the rows older than its slot). */
export async function drainOutbox(s: RelaySession, mode: string, upTo: number): Promise<number> {
  const db = s.rt.db()
  let total = 0
  while (!s.signal.aborted) {
    const { seqs, events } = await fetchBatch(db, s.rt.config.relay.batchSize, upTo)
    if (events.length === 0) break
    await s.publisher.publish(events, () => s.leader.check())
    await db.query(deletePublishedSql, [seqs])
    total += events.length
    s.log.debug('outbox rows published', { mode, events: events.length })
  }
  return total
}

/**
 * Pipelined: while Kafka commits batch N, the next batch is read (skipping N's rows) and batch N-1's rows are deleted.
 * Batch N+1 is published only after N committed, so order holds; a late-committing transaction with a lower seq is
 * simply in a later batch (per aggregate, writers are serialised, so it cannot be behind a newer version of its rows).
 */
export async function runPoll(s: RelaySession): Promise<void> {
  const { rt, log, signal } = s
  const cfg = rt.config.relay
  const db = rt.db()
  const backoff = new Backoff(cfg.retryMaxMs)
  let wake: (() => void) | undefined
  let notified = false
  const onNotify = () => {
    notified = true
    wake?.()
  }
  let listener: { unlisten(): Promise<void> } | undefined
  let lastStats = 0
  let prepared = false
  // Rows handed to Kafka whose delete has not finished: never read again meanwhile.
  const inflight = new Set<number>()
  let deleting: Promise<void> = Promise.resolve()
  let next: Promise<Batch> | undefined
  const readAhead = () => {
    const p = fetchBatch(db, cfg.batchSize, undefined, [...inflight])
    p.catch(() => {}) // awaited (and its error handled) later; never an unhandled rejection
    return p
  }
  const remove = (seqs: number[]) =>
    db.query(deletePublishedSql, [seqs]).then(
      () => seqs.forEach((q) => inflight.delete(q)),
      (error) => {
        // Still in the outbox: published again later (a duplicate with the same event id, never a loss).
        log.warn('deleting published outbox rows failed', { error, rows: seqs.length })
        seqs.forEach((q) => inflight.delete(q))
      },
    )
  try {
    while (!signal.aborted) {
      try {
        if (!prepared) {
          await db.query(ensureIndexSql)
          prepared = true
        }
        listener ??= await db.listen(NOTIFY_CHANNEL, onNotify)
        if (Date.now() - lastStats > STATS_EVERY_MS) {
          lastStats = Date.now()
          await updateStats(db)
        }
        notified = false
        const batch = await (next ?? readAhead())
        next = undefined
        if (batch.events.length > 0) {
          for (const q of batch.seqs) inflight.add(q)
          const publishing = s.publisher.publish(batch.events, () => s.leader.check())
          if (batch.events.length >= cfg.batchSize) next = readAhead()
          await publishing
          await deleting
          deleting = remove(batch.seqs)
          backoff.reset()
          if (next) continue
        } else {
          backoff.reset()
        }
        await deleting
        // Idle (or a partial batch): sleep until a NOTIFY or the poll interval, then linger so a burst coalesces.
        if (!notified) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(done, cfg.pollIntervalMs)
            function done() {
              clearTimeout(timer)
              signal.removeEventListener('abort', done)
              wake = undefined
              resolve()
            }
            wake = done
            signal.addEventListener('abort', done, { once: true })
          })
        }
        if (cfg.lingerMs > 0) await sleep(cfg.lingerMs, signal)
      } catch (error) {
        // Start over from the head of the outbox: nothing read ahead is kept.
        next = undefined
        await deleting
        inflight.clear()
        if (signal.aborted) break
        relayMetrics.errors.inc({ mode: 'poll' })
        const delayMs = backoff.next()
        log.warn('relay batch failed; retrying', { error, delayMs })
        await sleep(delayMs, signal)
      }
    }
  } finally {
    await deleting
    await listener?.unlisten().catch(() => {})
  }
}

async function updateStats(db: Db) {
  const [row] = await db.query<{ backlog: number; lag_seconds: number }>(outboxStatsSql)
  relayMetrics.backlog.set(row?.backlog ?? 0, { mode: 'poll' })
  relayMetrics.lag.set(row?.lag_seconds ?? 0, { mode: 'poll' })
}
