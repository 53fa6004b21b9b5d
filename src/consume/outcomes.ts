// The processing-outcome log, `cdc_outcomes`: what happened to each message the consumer could not simply store
// (duplicate, parked, dead-lettered), what redrive did with it (redriven), and its final store after a redrive; with
// consume.outcomes = "all" every stored event too. `_id` = outcome + Kafka position, so a batch processed again after
// a crash or a failed write records nothing twice. FerretDB has no TTL indexes: retention is a periodic deleteMany.
import type { InMessage } from '../clients/kafka.ts'
import type { IndexSpec, Store } from '../clients/mongo.ts'
import type { Config } from '../config.ts'
import { DlqHeaders, EventHeaders } from '../events.ts'
import type { Logger } from '../log.ts'
import { counter } from '../metrics.ts'

export const OUTCOMES_COLLECTION = 'cdc_outcomes'

export type OutcomeKind = 'stored' | 'duplicate' | 'parked' | 'dead-lettered' | 'redriven' | 'discarded'
export type OutcomeMode = Config['consume']['outcomes']

export interface OutcomeDoc {
  [field: string]: unknown
  /** `<outcome>:<topic>:<partition>:<offset>` */
  _id: string
  /** The event id (from the envelope or the cdc-event-id header); null for a message that names none. */
  eventId: string | null
  outcome: OutcomeKind
  /** ISO-8601 UTC; retention deletes by it. */
  at: string
  error?: string
  /** Where the message was: the consumed topic, or for `redriven` the DLQ topic it was taken from. */
  topic: string
  partition: number
  offset: string
  /** How often the message had been redriven when this happened. */
  redriveCount?: number
}

export const OUTCOME_INDEXES: IndexSpec[] = [
  { key: { eventId: 1, at: 1 }, name: 'event_at' },
  { key: { at: 1 }, name: 'at' },
]

const outcomes = counter('cdc_consume_outcomes_total', 'Processing outcomes (stored, duplicate, parked, dead-lettered, redriven), by outcome')

/** Whether this outcome goes to the log in this mode: failures and redrives always (unless off), plain stores with "all". */
export function isLogged(mode: OutcomeMode, kind: OutcomeKind, redriven: boolean): boolean {
  if (mode === 'off') return false
  return mode === 'all' || kind !== 'stored' || redriven
}

export function outcomeDoc(
  kind: OutcomeKind,
  at: string,
  where: { topic: string; partition: number; offset: string },
  details: { eventId: string | null; error?: string; redriveCount?: number },
): OutcomeDoc {
  return {
    _id: `${kind}:${where.topic}:${where.partition}:${where.offset}`,
    eventId: details.eventId,
    outcome: kind,
    at,
    ...(details.error !== undefined ? { error: details.error.slice(0, 2000) } : {}),
    topic: where.topic,
    partition: where.partition,
    offset: where.offset,
    ...(details.redriveCount ? { redriveCount: details.redriveCount } : {}),
  }
}

/** The outcomes of one consumer batch: collected as they happen, written by `flush` (idempotent), counted by `count`. */
export class OutcomeBatch {
  private pending: OutcomeDoc[] = []
  private readonly seen: OutcomeKind[] = []

  constructor(
    private readonly store: Store,
    private readonly mode: OutcomeMode,
    private readonly at: string,
  ) {}

  add(kind: OutcomeKind, message: InMessage, details: { eventId?: string | null; error?: string } = {}) {
    this.seen.push(kind)
    const redriven = message.headers[DlqHeaders.redriveId] !== undefined
    if (!isLogged(this.mode, kind, redriven)) return
    const redriveCount = Number(message.headers[DlqHeaders.redriveCount] ?? 0) || 0
    const eventId = details.eventId ?? message.headers[EventHeaders.id] ?? null
    this.pending.push(outcomeDoc(kind, this.at, message, { eventId, ...(details.error !== undefined ? { error: details.error } : {}), redriveCount }))
  }

  /** Writes what was collected since the last flush; an outcome already recorded (same kind and position) is skipped. */
  async flush(): Promise<void> {
    if (this.pending.length === 0) return
    const docs = this.pending
    this.pending = []
    await this.store.collection<OutcomeDoc>(OUTCOMES_COLLECTION).insertMany(docs)
  }

  /** Counts the batch's outcomes once it is done (a retried batch starts a new OutcomeBatch, so nothing twice). */
  count() {
    for (const kind of this.seen) outcomes.inc({ outcome: kind })
  }
}

/**
 * Records `redriven` for DLQ entries that redrive republished, once Kafka acknowledged them (never a redrive that did
 * not happen). `at` is taken before the send, so it sorts before whatever the consumer then does with them.
 */
export async function recordRedrives(
  store: Store,
  mode: OutcomeMode,
  at: string,
  entries: { topic: string; partition: number; offset: string; eventId: string | null; redriveCount: number }[],
): Promise<void> {
  outcomes.inc({ outcome: 'redriven' }, entries.length)
  if (mode === 'off' || entries.length === 0) return
  await store
    .collection<OutcomeDoc>(OUTCOMES_COLLECTION)
    .insertMany(entries.map((e) => outcomeDoc('redriven', at, e, { eventId: e.eventId, redriveCount: e.redriveCount })))
}

/** Outcomes of one event in the order they happened. */
export function outcomesOf(store: Store, eventId: string): Promise<OutcomeDoc[]> {
  return store.collection<OutcomeDoc>(OUTCOMES_COLLECTION).find({ eventId }, { sort: { at: 1, _id: 1 } })
}

/** Deletes outcomes older than the retention; returns how many. */
export function pruneOutcomes(store: Store, retentionDays: number, now = Date.now()): Promise<number> {
  const cutoff = new Date(now - retentionDays * 86_400_000).toISOString()
  return store.collection(OUTCOMES_COLLECTION).deleteMany({ at: { $lt: cutoff } })
}

const PRUNE_EVERY_MS = 60 * 60 * 1000

/** Creates the indexes, then prunes now and hourly (also when off: older entries still expire); returns the stop function. */
export async function startOutcomeLog(store: Store, config: Config, log: Logger): Promise<() => void> {
  // One index per call: FerretDB 1.24 drops the connection when several of them already exist.
  for (const index of OUTCOME_INDEXES) await store.collection(OUTCOMES_COLLECTION).createIndexes([index])
  const prune = () =>
    pruneOutcomes(store, config.consume.outcomeRetentionDays).then(
      (n) => n > 0 && log.info('outcomes pruned', { deleted: n, retentionDays: config.consume.outcomeRetentionDays }),
      (error) => log.warn('pruning outcomes failed', { error }),
    )
  void prune()
  const timer = setInterval(prune, PRUNE_EVERY_MS)
  return () => clearInterval(timer)
}
