// The one loop that owns a persistent slot's progress (wal and logical relay modes): it buffers decoded transactions
// (Begin … Commit), turns whole transactions into events in batches (the mode's `materialize`), publishes each batch
// in one Kafka transaction, lets the mode settle it, and only then confirms the batch's end LSN to the slot. A crash
// anywhere replays from the last confirmed LSN: duplicates, never gaps. The next batch is materialized while the
// previous one is published. A transaction too large to hold goes through in parts as it arrives (modes with
// `parts`). Keepalives confirm the server's position while nothing is pending, so an idle pipeline does not hold WAL
// back. Status updates go out at most every STATUS_EVERY_MS unless the server asks for one: the server pings each
// time it waits for WAL while our confirmed position is behind its own (after nearly every commit in the cluster), and
// answering each ping made socket writes a quarter of the relay's JavaScript time while it streamed (a tenth since).
import { startReplication, type ReplicationStream } from '../clients/postgres.ts'
import { Backoff, sleep } from './backoff.ts'
import { LeadershipLost } from './leader.ts'
import { relayMetrics } from './metrics.ts'
import { formatLsn, parsePgOutput, parseStream, statusUpdate, type PgOutput, type Relation } from './pgoutput.ts'
import type { RelaySession } from './poll.ts'
import type { Outgoing } from './publish.ts'

/** The least time between two standby status updates the relay sends unasked (pg_recvlogical: 10 s). */
const STATUS_EVERY_MS = 100

/** One committed source transaction as the stream delivers it; `items` are whatever the mode collects. */
export interface StreamTx<T> {
  items: T[]
  /** Begin's xid (32 bits) and final (commit record) LSN, Commit's end LSN and time. */
  xid: number
  commitLsn: bigint
  endLsn: bigint
  commitTime: Date
  /** When its Commit reached the relay (performance.now()): a batch lingers from its first transaction's arrival. */
  receivedAt?: number
  /** Too large to hold: applied and published in parts while it is still being received (until `complete`). */
  streaming?: boolean
  complete?: boolean
}

export interface StreamMode<T> {
  /** Metric label. */
  name: string
  /** Collects one decoded message of an open transaction (Begin and Commit are the loop's). */
  collect(tx: StreamTx<T>, msg: PgOutput, relations: ReadonlyMap<number, Relation>): void
  /** The events of whole transactions, in order (may write to PostgreSQL; must be idempotent on replay). */
  materialize(batch: StreamTx<T>[], signal: AbortSignal): Promise<Outgoing[]>
  /** After Kafka committed the batch, before its LSN is confirmed (e.g. delete outbox rows). */
  settle?(batch: StreamTx<T>[]): Promise<void>
  /** Called at each heartbeat (metrics). */
  heartbeat?(): void
  /**
   * A mode that can apply a transaction in parts gets the ones larger than 10 × relay.batchSize that way: part by
   * part as they arrive, all in one Kafka transaction, so the relay holds at most about that many items of it.
   */
  parts?: {
    /** How far an earlier attempt got: applied wholly, or the number of events its parts made. */
    progress(tx: StreamTx<T>): Promise<{ applied: boolean; events: number }>
    /** Events `from` … `from + count - 1` of the transaction (made by an earlier attempt), in order. */
    readBack(tx: StreamTx<T>, from: number, count: number): Promise<Outgoing[]>
    /** Applies the next part (the items after the previous part's); returns the events it made. */
    apply(tx: StreamTx<T>, items: T[], last: boolean): Promise<Outgoing[]>
  }
}

/**
 * A leader session of a slot-based mode: prepare (publication, slot) once, stream, and reconnect with backoff after a
 * failure. `stuck` may claim a failure as a state that needs an operator: it is then logged by the mode, and the loop
 * only prepares again after relay.retryMaxMs.
 */
export async function runSlot<T>(
  s: RelaySession,
  name: string,
  steps: { prepare(): Promise<void>; mode(): StreamMode<T>; stuck?(error: unknown): Promise<boolean> },
): Promise<void> {
  const backoff = new Backoff(s.rt.config.relay.retryMaxMs)
  let prepared = false
  while (!s.signal.aborted) {
    try {
      if (!prepared) {
        await steps.prepare()
        prepared = true
      }
      await streamTransactions(s, backoff, steps.mode())
    } catch (error) {
      if (s.signal.aborted || error instanceof LeadershipLost) break
      if (await steps.stuck?.(error)) {
        prepared = false
        await sleep(s.rt.config.relay.retryMaxMs, s.signal)
        continue
      }
      relayMetrics.errors.inc({ mode: name })
      const delayMs = backoff.next()
      s.log.warn('relay replication failed; reconnecting', { error, delayMs })
      await sleep(delayMs, s.signal)
    }
  }
}

export async function streamTransactions<T>(s: RelaySession, backoff: Backoff, mode: StreamMode<T>): Promise<void> {
  const { rt, log, signal } = s
  const cfg = rt.config.relay
  const replication: ReplicationStream = await startReplication({
    url: rt.config.postgres.url,
    ssl: rt.security.postgres,
    slot: cfg.slot,
    publication: cfg.publication,
  })
  log.info('replication started', { slot: cfg.slot, publication: cfg.publication })
  const relations = new Map<number, Relation>()
  const ready: StreamTx<T>[] = []
  let readyItems = 0
  let open: StreamTx<T> | undefined
  let acked = 0n
  // The server's send position from its last keepalive: everything before it has reached us.
  let serverEnd = 0n
  let statusAt = 0
  let statusTimer: ReturnType<typeof setTimeout> | undefined
  let unsettled = 0
  let settling: Promise<void> = Promise.resolve()
  let paused = false
  let failure: Error | undefined
  let wake = () => {}
  const maxBuffered = cfg.batchSize * 10

  // (a batch being materialized or published is still in `ready`)
  const idle = () => !open && ready.length === 0 && unsettled === 0
  const sendStatus = (replyRequested: boolean) => {
    clearTimeout(statusTimer)
    statusTimer = undefined
    statusAt = performance.now()
    replication.write(statusUpdate(acked, replyRequested))
  }
  // 'later': within STATUS_EVERY_MS of the last update; 'now': at once (the server asked); 'ask': at once, asking
  // the server for a keepalive back (the heartbeat).
  const confirm = (lsn: bigint, when: 'later' | 'now' | 'ask' = 'later') => {
    if (lsn > acked) acked = lsn
    const wait = statusAt + STATUS_EVERY_MS - performance.now()
    if (when !== 'later' || wait <= 0) sendStatus(when === 'ask')
    else statusTimer ??= setTimeout(() => failure || sendStatus(false), wait)
  }

  const onMessage = (chunk: Buffer) => {
    const m = parseStream(chunk)
    if (!m) return
    if (m.kind === 'keepalive') {
      // Everything before walEnd has reached us; with nothing pending it is all published, so the slot may move on
      // (this is what keeps an idle database from retaining WAL).
      if (m.walEnd > serverEnd) serverEnd = m.walEnd
      const lsn = idle() ? serverEnd : acked
      if (m.replyRequested) confirm(lsn, 'now')
      else if (lsn > acked) confirm(lsn)
      return
    }
    const msg = parsePgOutput(m.body)
    switch (msg.tag) {
      case 'begin':
        open = { items: [], xid: msg.xid, commitLsn: msg.finalLsn, endLsn: 0n, commitTime: msg.commitTime }
        break
      case 'relation':
        relations.set(msg.relation.id, msg.relation)
        break
      case 'commit':
        if (!open) break
        open.endLsn = msg.endLsn
        open.receivedAt = performance.now()
        if (open.streaming) {
          open.complete = true
          open = undefined
          wake()
          break
        }
        ready.push(open)
        readyItems += open.items.length
        open = undefined
        if (readyItems >= maxBuffered && !paused) {
          paused = true
          replication.pause()
        }
        wake()
        break
      default:
        if (!open) break
        mode.collect(open, msg, relations)
        if (mode.parts && !open.streaming && open.items.length > maxBuffered) {
          // from now on it is applied while it arrives (it queues behind the transactions committed before it)
          open.streaming = true
          ready.push(open)
        }
        if (open.streaming) {
          if (open.items.length >= maxBuffered && !paused) {
            paused = true
            replication.pause()
          }
          if (open.items.length >= cfg.batchSize) wake()
        }
    }
  }
  replication.onData((chunk) => {
    try {
      onMessage(chunk)
    } catch (error) {
      failure = error as Error
      wake()
    }
  })
  void replication.closed.then((error) => {
    failure ??= error ?? new Error('replication stream ended')
    wake()
  })

  const reportStats = () => {
    relayMetrics.backlog.set(readyItems, { mode: mode.name })
    relayMetrics.lag.set(ready[0] ? (Date.now() - ready[0].commitTime.getTime()) / 1000 : 0, { mode: mode.name })
  }
  const heartbeat = setInterval(() => {
    // Also asks the server for a keepalive, whose walEnd we confirm when idle.
    if (!failure) confirm(idle() ? serverEnd : acked, 'ask')
    reportStats()
    mode.heartbeat?.()
  }, cfg.heartbeatMs)

  // Retries `step` with backoff until it succeeds; gives up when the session is failing or over.
  const retrying = async <R>(what: string, items: number, step: () => Promise<R>): Promise<R> => {
    for (;;) {
      try {
        const result = await step()
        backoff.reset()
        return result
      } catch (error) {
        if (signal.aborted || error instanceof LeadershipLost || failure) throw error
        relayMetrics.errors.inc({ mode: mode.name })
        const delayMs = backoff.next()
        log.warn(`relay batch ${what} failed; retrying`, { error, delayMs, items })
        await sleep(delayMs, signal)
      }
    }
  }

  // Publishes a materialized batch (the head of `ready`), then settles it and confirms its LSN. Runs while the next
  // batch is materialized; never rejects: a failure ends the session through `failure`.
  const publishBatch = async (batch: StreamTx<T>[], count: number, events: Outgoing[]) => {
    try {
      await retrying('publish', count, () => s.publisher.publish(events, () => s.leader.check()))
    } catch (error) {
      failure ??= error as Error
      wake()
      return
    }
    log.debug('published', { items: count, lsn: formatLsn(batch.at(-1)!.endLsn) })
    await inKafka(batch, count)
  }

  // A batch at the head of `ready` (its first `taken`, with `count` of `readyItems`) is in Kafka: it leaves `ready`,
  // is settled and then its LSN confirmed. Settling overlaps with the next batches; a failed settle ends the session:
  // it restarts from the last confirmed LSN (duplicates, never a row left behind).
  const inKafka = async (batch: StreamTx<T>[], count: number) => {
    const now = Date.now()
    for (const tx of batch) relayMetrics.commitToKafka.observe((now - tx.commitTime.getTime()) / 1000, { mode: mode.name })
    ready.splice(0, batch.length)
    taken -= batch.length
    readyItems -= count
    await settling
    const lsn = batch.at(-1)!.endLsn
    unsettled++
    settling = (mode.settle ? mode.settle(batch) : Promise.resolve()).then(
      () => {
        unsettled--
        if (!failure) confirm(lsn)
      },
      (error: Error) => {
        unsettled--
        failure ??= error
        wake()
      },
    )
    if (paused && readyItems < maxBuffered / 2) {
      paused = false
      replication.resume()
    }
    reportStats()
  }

  const nextWake = () =>
    new Promise<void>((resolve) => {
      wake = resolve
      signal.addEventListener('abort', () => resolve(), { once: true })
    }).then(() => {
      wake = () => {}
    })

  // A transaction too large to hold (the head of `ready`, nothing before it unpublished): its parts are applied and
  // sent as they arrive, all in one Kafka transaction, committed after its last part; then its LSN is confirmed. A
  // failure aborts the Kafka transaction and ends the session: the replay reads back what the parts applied so far.
  const publishInParts = async (tx: StreamTx<T>) => {
    const parts = mode.parts!
    taken = 1
    const progress = await parts.progress(tx)
    const kafka = await s.publisher.begin()
    try {
      for (let from = 0; progress.applied || from < progress.events; from += cfg.batchSize) {
        const count = progress.applied ? cfg.batchSize : Math.min(cfg.batchSize, progress.events - from)
        const events = await parts.readBack(tx, from, count)
        await kafka.send(events)
        if (events.length < count) break
      }
      for (;;) {
        if (failure || signal.aborted) throw failure ?? new Error('relay stopping')
        if (!tx.complete && tx.items.length < cfg.batchSize) {
          await nextWake()
          continue
        }
        const part = tx.items.splice(0, cfg.batchSize)
        const last = tx.complete === true && tx.items.length === 0
        if (paused && tx.items.length < maxBuffered / 2) {
          paused = false
          replication.resume()
        }
        if (!progress.applied) await kafka.send(await parts.apply(tx, part, last))
        if (last) break
      }
      await kafka.commit(() => s.leader.check())
    } catch (error) {
      await kafka.abort()
      throw error
    }
    log.info('large transaction published in parts', { lsn: formatLsn(tx.commitLsn) })
    // (a transaction in parts is not counted in readyItems)
    await inKafka([tx], 0)
  }

  // `ready` holds the transactions not yet in Kafka; its first `taken` are materialized (one batch being published).
  let taken = 0
  let publishing: Promise<void> = Promise.resolve()
  try {
    while (!signal.aborted && !failure) {
      if (ready.length === taken) {
        await nextWake()
        continue
      }
      if (ready[taken]!.streaming) {
        // the batches before it are in Kafka first
        await publishing
        if (failure) break
        await publishInParts(ready[0]!)
        continue
      }
      // A batch that is not full waits until its first transaction has waited lingerMs: time it already spent queued
      // behind the previous batch counts (a fixed sleep here added the whole linger to what that wait had cost).
      const waiting = ready.slice(taken).reduce((n, tx) => n + tx.items.length, 0)
      const linger = cfg.lingerMs - (performance.now() - (ready[taken]!.receivedAt ?? 0))
      if (linger > 0 && waiting < cfg.batchSize) await sleep(linger, signal)
      // Whole transactions up to batchSize items (at least one transaction, however large).
      let n = taken
      let count = 0
      while (n < ready.length && !ready[n]!.streaming && (n === taken || count + ready[n]!.items.length <= cfg.batchSize)) {
        count += ready[n++]!.items.length
      }
      const batch = ready.slice(taken, n)
      taken = n
      // Materializing this batch overlaps with publishing the previous one; Kafka still gets them in order.
      const events = await retrying('materialize', count, () => mode.materialize(batch, signal)).catch((error: unknown) => {
        throw failure ?? error
      })
      await publishing
      if (failure) break
      publishing = publishBatch(batch, count, events)
    }
    await publishing
    if (failure && !signal.aborted) throw failure
  } catch (error) {
    // the batch being published stops retrying too
    failure ??= error as Error
    throw error
  } finally {
    await publishing
    await settling
    clearInterval(heartbeat)
    // a confirmation still waiting goes out, so a restart replays less
    if (statusTimer && !failure) sendStatus(false)
    clearTimeout(statusTimer)
    await replication.end()
  }
}
