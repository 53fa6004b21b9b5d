// Discarding a dead head: an admin gives up on the failed message an aggregate is parked behind (one that fails on
// every redrive) with a reason. Its place in the stream is taken by a message published like a redrive, so the
// partition's owner handles it in order: an `EventDiscarded` event at the head's version when the head names one (the
// history stays gapless, and the read model passes it without a row change), otherwise an empty marker that only lets
// the followers pass. The parked followers are republished behind it, in order. Recorded in `cdc_outcomes`, in the
// redrive ledger, and (for a versioned head) in the aggregate's history: who, what, when, why.
import type { OutMessage } from '../clients/kafka.ts'
import { outcomeDoc, OUTCOMES_COLLECTION, recordRedrives } from '../consume/outcomes.ts'
import { DISCARDED_BY_HEADER, DlqHeaders, EventHeaders, type CdcEvent } from '../events.ts'
import type { Runtime } from '../runtime.ts'
import { consumedTables, discoverTopics, tableOfTopic } from '../topics.ts'
import { DlqFilterError, load, parkSnapshot, pendingGroups, republishGroups, republished, withOriginals, type Loaded } from './index.ts'
import { dlqPosition, recordRedriven } from './ledger.ts'

export const DISCARDED_TYPE = 'EventDiscarded'

export interface DiscardRequest {
  /** The DLQ entry (as listed: the .dlq topic and its position there). */
  topic: string
  partition: number
  offset: string
  reason: string
  /** Who discards it (the API's principal, or the CLI's user). */
  actor: string
}

export interface DiscardReport {
  discarded: { topic: string; partition: number; offset: string; key: string | null; eventId: string | null }
  /** The history record that takes the head's version, when it had one. */
  record: { table: string; version: number; eventId: string } | null
  /** Parked followers republished behind it. */
  released: number
}

/** The entry is not (or no longer) an aggregate's pending head. */
export class DiscardConflictError extends Error {
  override name = 'DiscardConflictError'
}

export class DiscardNotFoundError extends Error {
  override name = 'DiscardNotFoundError'
}

export async function discard(rt: Runtime, req: DiscardRequest): Promise<DiscardReport> {
  const tables = consumedTables(rt.config, await rt.tracked().refresh())
  const origin = (await discoverTopics(rt.config, rt.kafka(), tables)).find((t) => `${t}.dlq` === req.topic)
  if (origin === undefined) throw new DlqFilterError(`topic: ${JSON.stringify(req.topic)} is not the DLQ of a consumed topic`)
  const position = dlqPosition(req.topic, req.partition, req.offset)
  const snapshot = await parkSnapshot(rt, [origin])
  const loaded = await load(rt, origin)
  const target = loaded.find((l) => l.entry.partition === req.partition && l.entry.offset === req.offset)
  if (!target) throw new DiscardNotFoundError(`no DLQ entry at ${position}`)
  if (target.entry.redriven) throw new DiscardConflictError(`${position} was already redriven or discarded`)
  const group = [...pendingGroups(loaded)].find(([, g]) => g.some((l) => l === target))
  if (!group || group[1][0] !== target) {
    const head = group?.[1][0]?.entry
    throw new DiscardConflictError(`${position} is not the head of its aggregate's dead letters${head ? `; discard ${dlqPosition(head.topic, head.partition, head.offset)} first` : ''}`)
  }

  const at = new Date().toISOString()
  const record = discardedEvent(rt, tables, origin, target, req, at)
  await withOriginals(rt, group[1].slice(1))
  const { published } = await republishGroups(rt, [group], snapshot, (l) => marker(l, record, req))
  if (published.length === 0) throw new DiscardConflictError(`${position} is being redriven or discarded by someone else`)

  const store = await rt.mongo()
  const followers = group[1].slice(1)
  await recordRedriven(store, [
    { position, dlqTopic: req.topic, eventId: target.entry.eventId, discarded: { actor: req.actor, reason: req.reason } },
    ...followers.map((l) => ({ position: dlqPosition(l.entry.topic, l.entry.partition, l.entry.offset), dlqTopic: l.entry.topic, eventId: l.entry.eventId })),
  ])
  if (rt.config.consume.outcomes !== 'off') {
    const doc = outcomeDoc('discarded', at, target.entry, { eventId: target.entry.eventId, error: target.entry.error, redriveCount: target.entry.redriveCount })
    await store.collection(OUTCOMES_COLLECTION).insertMany([{ ...doc, actor: req.actor, reason: req.reason }])
  }
  await recordRedrives(store, rt.config.consume.outcomes, at, followers.map(({ entry: e }) => ({ ...e, redriveCount: e.redriveCount + 1 })))
  rt.log.info('dead head discarded', { position, eventId: target.entry.eventId, actor: req.actor, reason: req.reason, released: followers.length })
  return {
    discarded: { topic: req.topic, partition: req.partition, offset: req.offset, key: target.entry.key, eventId: target.entry.eventId },
    record: record ? { table: record.aggregate.type, version: record.version, eventId: record.id } : null,
    released: followers.length,
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * The `EventDiscarded` event for a head that names its aggregate's version (in its envelope, or in the cdc-version
 * header with the table its topic carries); null when it names none. It keeps the head's event id, so the original
 * can never be stored later as well.
 */
function discardedEvent(rt: Runtime, tables: string[], origin: string, { entry, message }: Loaded, req: DiscardRequest, at: string): CdcEvent | null {
  if (entry.key === null || entry.key === '') return null
  let body: Record<string, unknown> = {}
  try {
    const parsed = JSON.parse(message.value?.toString('utf8') ?? '') as unknown
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as Record<string, unknown>
  } catch {}
  const aggregate = body.aggregate as { type?: unknown; id?: unknown } | undefined
  const table =
    typeof aggregate?.type === 'string' && tables.includes(aggregate.type) && aggregate.id === entry.key
      ? aggregate.type
      : tableOfTopic(rt.config, tables, origin)
  const version = typeof body.version === 'number' ? body.version : Number(message.headers[EventHeaders.version])
  if (table === undefined || !Number.isSafeInteger(version) || version < 1) return null
  const id = typeof body.id === 'string' && UUID.test(body.id) ? body.id : entry.eventId !== null && UUID.test(entry.eventId) ? entry.eventId : Bun.randomUUIDv7()
  const tx = body.tx as { id?: unknown; index?: unknown } | undefined
  return {
    id,
    type: DISCARDED_TYPE,
    op: 'm',
    aggregate: { type: table, id: entry.key },
    version,
    tx: {
      id: typeof tx?.id === 'string' && /^\d+$/.test(tx.id) ? tx.id : '0',
      index: typeof tx?.index === 'number' && Number.isSafeInteger(tx.index) && tx.index >= 0 ? tx.index : 0,
    },
    occurredAt: at.replace('Z', '000Z'),
    actor: { id: req.actor.slice(0, 200), source: 'api' },
    reason: req.reason,
    correlationId: null,
    causationId: null,
    changes: [],
    before: null,
    after: null,
    data: {
      discarded: {
        eventId: entry.eventId,
        eventType: entry.eventType,
        error: entry.error.slice(0, 2000),
        dlq: dlqPosition(entry.topic, entry.partition, entry.offset),
        origin: entry.origin,
      },
    },
    schema: 1,
  }
}

/** What is published in the discarded head's place. */
function marker(l: Loaded, record: CdcEvent | null, req: DiscardRequest): OutMessage {
  const base = republished(l)
  const headers: Record<string, string> = {
    [DlqHeaders.redriveId]: base.headers![DlqHeaders.redriveId]!,
    [DlqHeaders.redriveCount]: base.headers![DlqHeaders.redriveCount]!,
    [DISCARDED_BY_HEADER]: req.actor,
  }
  if (!record) return { topic: base.topic, key: base.key, value: '', headers }
  Object.assign(headers, { [EventHeaders.id]: record.id, [EventHeaders.type]: record.type, [EventHeaders.version]: String(record.version) })
  return { topic: base.topic, key: base.key, value: JSON.stringify(record), headers }
}
