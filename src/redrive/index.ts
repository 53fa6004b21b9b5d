// `cdc redrive` and the DLQ listing behind `GET /dlq`. Redrive republishes DLQ messages to their original topic with
// `cdc-redrive-count` incremented and `cdc-redrive-id` = their DLQ position. Messages are redriven per aggregate
// (origin topic + key) in DLQ order: a failed head takes its parked followers along, and the aggregate's park in
// `cdc_parked` lists them in `release`, so the consumer lets exactly those through and lifts the park after the last.
import type { InMessage, OutMessage } from '../clients/kafka.ts'
import { DlqHeaders, dlqTopic } from '../events.ts'
import { recordRedrives } from '../consume/outcomes.ts'
import { PARKED_COLLECTION, parkKey } from '../consume/parking.ts'
import type { Runtime } from '../runtime.ts'
import { consumedTables, consumedTopics } from '../topics.ts'
import { toEntry, type DlqEntry } from './entries.ts'
import { dlqPosition, recordRedriven, redrivenPositions } from './ledger.ts'
import { readTopics } from './read.ts'

export type { DlqEntry } from './entries.ts'

export interface RedriveFilter {
  /** Original topic (not the .dlq one). */
  topic?: string
  /** Aggregate id = message key. */
  aggregate?: string
  /** Dead-lettered at or after. */
  since?: Date
  /** Substring of the error. */
  error?: string
  /** At most this many messages; an aggregate's group is never split, so a group that does not fit waits. */
  limit?: number
  dryRun?: boolean
}

export interface RedriveItem {
  topic: string
  partition: number
  offset: string
  key: string | null
  eventId: string | null
  redriveCount: number
  parked: boolean
  action: 'redriven' | 'would-redrive' | 'kept-max-redrives'
}

export interface RedriveReport {
  redriven: number
  kept: number
  dryRun: boolean
  items: RedriveItem[]
}

export interface DlqListFilter {
  topic?: string
  aggregate?: string
  since?: Date
  error?: string
  limit?: number
  /** `nextCursor` of the previous page. */
  cursor?: string
  /** Also list entries already redriven (default false). */
  includeRedriven?: boolean
}

/** A bad filter value (e.g. a cursor that is not ours): a client error, not a server one. */
export class DlqFilterError extends Error {
  override name = 'DlqFilterError'
}

interface Loaded {
  entry: DlqEntry
  message: InMessage
}

async function load(rt: Runtime, topic?: string): Promise<Loaded[]> {
  const tracked = await rt.tracked().refresh()
  const origins = consumedTopics(rt.config, consumedTables(rt.config, tracked)).filter((t) => topic === undefined || t === topic)
  const dlqTopics = origins.map(dlqTopic)
  if (dlqTopics.length === 0) return []
  const messages = await readTopics(rt, dlqTopics)
  if (messages.length === 0) return []
  const redriven = await redrivenPositions(await rt.mongo(), dlqTopics)
  return messages.map((message) => ({ entry: toEntry(message, redriven), message }))
}

const matches = (e: DlqEntry, f: { aggregate?: string; since?: Date; error?: string }) =>
  (f.aggregate === undefined || e.key === f.aggregate) &&
  (f.since === undefined || Date.parse(e.at) >= f.since.getTime()) &&
  (f.error === undefined || e.error.includes(f.error))

/** DLQ entries in (topic, partition, offset) order, paged by an opaque cursor. */
export async function listDlq(rt: Runtime, filter: DlqListFilter = {}): Promise<{ items: DlqEntry[]; nextCursor: string | null }> {
  let after: [string, number, number] | undefined
  if (filter.cursor !== undefined) {
    try {
      const parsed = JSON.parse(Buffer.from(filter.cursor, 'base64url').toString('utf8')) as unknown
      if (!Array.isArray(parsed) || typeof parsed[0] !== 'string' || !Number.isInteger(parsed[1]) || !Number.isInteger(parsed[2])) throw new Error()
      after = parsed as [string, number, number]
    } catch {
      throw new DlqFilterError('cursor: not a cursor returned by this listing')
    }
  }
  const limit = filter.limit ?? 100
  const all = (await load(rt, filter.topic))
    .map((l) => l.entry)
    .filter((e) => (filter.includeRedriven || !e.redriven) && matches(e, filter))
    .filter((e) => {
      if (!after) return true
      const [t, p, o] = after
      return e.topic > t || (e.topic === t && (e.partition > p || (e.partition === p && Number(e.offset) > o)))
    })
  const items = all.slice(0, limit)
  const last = items.at(-1)
  const nextCursor =
    all.length > limit && last ? Buffer.from(JSON.stringify([last.topic, last.partition, Number(last.offset)])).toString('base64url') : null
  return { items, nextCursor }
}

export async function redrive(rt: Runtime, filter: RedriveFilter): Promise<RedriveReport> {
  const report: RedriveReport = { redriven: 0, kept: 0, dryRun: filter.dryRun === true, items: [] }
  const loaded = await load(rt, filter.topic)
  // Pending entries per aggregate, in DLQ order; a consumer crash can dead-letter one message twice (same origin).
  const groups = new Map<string, Loaded[]>()
  const seen = new Set<string>()
  for (const l of loaded) {
    const { entry } = l
    if (entry.redriven) continue
    const origin = `${entry.origin.topic}:${entry.origin.partition}:${entry.origin.offset}`
    if (seen.has(origin)) continue
    seen.add(origin)
    const key = parkKey(entry.origin.topic, entry.key)
    groups.set(key, [...(groups.get(key) ?? []), l])
  }
  const item = (e: DlqEntry, action: RedriveItem['action']): RedriveItem => ({
    topic: e.topic,
    partition: e.partition,
    offset: e.offset,
    key: e.key,
    eventId: e.eventId,
    redriveCount: e.redriveCount,
    parked: e.parked,
    action,
  })

  const chosen: [string, Loaded[]][] = []
  let count = 0
  for (const [key, group] of groups) {
    const head = group[0]!.entry
    if (!matches(head, filter)) continue
    if (head.redriveCount >= rt.config.redrive.maxRedrives) {
      report.kept += group.length
      report.items.push(...group.map((l) => item(l.entry, 'kept-max-redrives')))
      continue
    }
    if (filter.limit !== undefined && count + group.length > filter.limit) continue
    count += group.length
    chosen.push([key, group])
  }
  if (report.dryRun) {
    for (const [, group] of chosen) report.items.push(...group.map((l) => item(l.entry, 'would-redrive')))
    return report
  }
  if (chosen.length === 0) return report

  const store = await rt.mongo()
  // Release first: the consumer must know these may pass the park before they arrive.
  await store.collection(PARKED_COLLECTION).bulkWrite(
    chosen.map(([key, group]) => ({
      updateOne: {
        filter: { _id: key },
        update: { $set: { release: group.map((l) => dlqPosition(l.entry.topic, l.entry.partition, l.entry.offset)) } },
      },
    })),
  )
  const out: OutMessage[] = chosen.flatMap(([, group]) => group.map((l) => republished(l)))
  const producer = await rt.kafka().producer()
  const sentAt = new Date().toISOString()
  try {
    await producer.send(out)
  } finally {
    await producer.disconnect().catch(() => {})
  }
  await recordRedriven(
    store,
    chosen.flatMap(([, group]) =>
      group.map((l) => ({ position: dlqPosition(l.entry.topic, l.entry.partition, l.entry.offset), dlqTopic: l.entry.topic, eventId: l.entry.eventId })),
    ),
  )
  await recordRedrives(
    store,
    rt.config.consume.outcomes,
    sentAt,
    chosen.flatMap(([, group]) => group.map(({ entry: e }) => ({ ...e, redriveCount: e.redriveCount + 1 }))),
  )
  for (const [, group] of chosen) {
    report.redriven += group.length
    report.items.push(...group.map((l) => item(l.entry, 'redriven')))
  }
  rt.log.info('redriven', { count: report.redriven, kept: report.kept })
  return report
}

const DLQ_ONLY = new Set<string>([DlqHeaders.error, DlqHeaders.topic, DlqHeaders.partition, DlqHeaders.offset, DlqHeaders.group, DlqHeaders.at, DlqHeaders.parked])

/** The original message again, on its original topic and key, counting this redrive. */
function republished({ entry, message }: Loaded): OutMessage {
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(message.headers)) if (!DLQ_ONLY.has(k)) headers[k] = v
  headers[DlqHeaders.redriveCount] = String(entry.redriveCount + 1)
  headers[DlqHeaders.redriveId] = dlqPosition(entry.topic, entry.partition, entry.offset)
  return { topic: entry.origin.topic, key: message.key ?? '', value: message.value ?? '', headers }
}
