// Poll mode: read whole transactions from cdc.outbox in seq order (envelopes from cdc.event_store), publish them in one
// Kafka transaction, and delete the rows only after Kafka acknowledged the commit. Rows are deleted rather than tracked
// by a high-water mark, so a transaction that commits late (lower seq) is never skipped; per aggregate, writers are
// serialised by row/advisory locks, so seq order is version order.
// Wake-ups: while rows keep coming the relay reads on; once a read finds nothing it arms cdc.relay_wake (writers
// NOTIFY cdc_outbox only while it is armed: a NOTIFY serialises commits) and sleeps until a NOTIFY or
// relay.pollIntervalMs. Writers that looked at the flag before it was armed hold xids older than a horizon taken after
// arming; until none of them runs, the relay looks again after short, growing pauses instead.
import fetchBatchSql from '../../sql/relay/fetch-batch.sql' with { type: 'text' }
import deletePublishedSql from '../../sql/relay/delete-published.sql' with { type: 'text' }
import outboxStatsSql from '../../sql/relay/outbox-stats.sql' with { type: 'text' }
import armWakeSql from '../../sql/relay/arm-wake.sql' with { type: 'text' }
import disarmWakeSql from '../../sql/relay/disarm-wake.sql' with { type: 'text' }
import writersRunningSql from '../../sql/relay/writers-running.sql' with { type: 'text' }
import type { Db } from '../clients/postgres.ts'
import type { Logger } from '../log.ts'
import type { Runtime } from '../runtime.ts'
import { Backoff, sleep } from './backoff.ts'
import type { Leadership } from './leader.ts'
import { relayMetrics } from './metrics.ts'
import { fromEventRow, type EventRow, type Outgoing, type Publisher } from './publish.ts'

export const NOTIFY_CHANNEL = 'cdc_outbox'
const STATS_EVERY_MS = 2000
/** First pause while writers older than the arming horizon still run (doubles up to relay.pollIntervalMs). */
const WATCH_FIRST_MS = 2

/** An outbox row with its event (all null for a row whose event is gone). */
type OutboxRow = { seq: number } & (EventRow | { [K in keyof EventRow]: null })

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
    events: rows.flatMap((r) => (r.event_id === null ? [] : [fromEventRow(r)])),
  }
}

/** Publishes and deletes the outbox rows up to seq `upTo` (wal mode: the rows older than its slot). */
export async function drainOutbox(s: RelaySession, mode: string, upTo: number): Promise<number> {
  const db = s.rt.relayDb()
  let total = 0
  while (!s.signal.aborted) {
    const { seqs, events } = await fetchBatch(db, s.rt.config.relay.batchSize, upTo)
    if (seqs.length === 0) break
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
  const db = rt.relayDb()
  const backoff = new Backoff(cfg.retryMaxMs)
  let wake: (() => void) | undefined
  let notified = false
  const onNotify = () => {
    notified = true
    wake?.()
  }
  let listener: { unlisten(): Promise<void> } | undefined
  let lastStats = 0
  // Rows handed to Kafka whose delete has not finished: never read again meanwhile.
  const inflight = new Set<number>()
  let deleting: Promise<void> = Promise.resolve()
  let next: Promise<Batch> | undefined
  // Whether cdc.relay_wake is armed, the horizon taken when arming while older writers may still run, and the pause.
  let armed = false
  let watching: string | undefined
  let pause = WATCH_FIRST_MS
  const sleepUnlessNotified = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms)
      function done() {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        wake = undefined
        resolve()
      }
      wake = done
      signal.addEventListener('abort', done, { once: true })
    })
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
        listener ??= await db.listen(NOTIFY_CHANNEL, onNotify)
        if (Date.now() - lastStats > STATS_EVERY_MS) {
          lastStats = Date.now()
          await updateStats(db)
        }
        notified = false
        // Checked before the read: once none of them runs, this read sees everything they committed.
        if (watching && !(await writersRunning(db, watching))) watching = undefined
        const batch = await (next ?? readAhead())
        next = undefined
        if (armed && (batch.seqs.length > 0 || notified)) {
          // Awake with work: writers need not NOTIFY until the relay is idle again.
          await db.query(disarmWakeSql)
          armed = false
          watching = undefined
        }
        if (batch.seqs.length > 0) {
          for (const q of batch.seqs) inflight.add(q)
          const publishing = s.publisher.publish(batch.events, () => s.leader.check())
          if (batch.seqs.length >= cfg.batchSize) next = readAhead()
          await publishing
          await deleting
          deleting = remove(batch.seqs)
          backoff.reset()
          if (next) continue
        } else {
          backoff.reset()
        }
        await deleting
        if (batch.seqs.length === 0 && !notified) {
          if (!armed) {
            // Nothing to do: ask writers for a NOTIFY, then read once more (a commit may have come in unannounced).
            watching = await armWake(db)
            armed = true
            pause = WATCH_FIRST_MS
            continue
          }
          // Sleep until a NOTIFY or the poll interval; only briefly while unannounced writers may still commit.
          await sleepUnlessNotified(watching ? pause : cfg.pollIntervalMs)
          if (watching) pause = Math.min(pause * 2, cfg.pollIntervalMs)
        }
        // A partial batch or a NOTIFY: rows keep coming, read on after lingering so a burst coalesces.
        if (cfg.lingerMs > 0) await sleep(cfg.lingerMs, signal)
      } catch (error) {
        // Start over from the head of the outbox: nothing read ahead is kept; arm the wake-up anew.
        next = undefined
        armed = false
        watching = undefined
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
    // Writers need not NOTIFY a relay that is gone (the next one arms the flag when it is idle).
    if (armed) await db.query(disarmWakeSql).catch(() => {})
    await listener?.unlisten().catch(() => {})
  }
}

/** Arms cdc.relay_wake; returns the horizon: writers older than it may commit without a NOTIFY. */
async function armWake(db: Db): Promise<string> {
  const [row] = await db.query<{ horizon: string }>(armWakeSql)
  return row!.horizon
}

async function writersRunning(db: Db, horizon: string): Promise<boolean> {
  const [row] = await db.query<{ running: boolean }>(writersRunningSql, [horizon])
  return row?.running ?? false
}

async function updateStats(db: Db) {
  const [row] = await db.query<{ backlog: number; lag_seconds: number }>(outboxStatsSql)
  relayMetrics.backlog.set(row?.backlog ?? 0, { mode: 'poll' })
  relayMetrics.lag.set(row?.lag_seconds ?? 0, { mode: 'poll' })
}
