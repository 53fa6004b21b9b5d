// `cdc redrive` and the DLQ listing behind `GET /dlq`. Redrive republishes DLQ messages to their original topic with
// `cdc-redrive-count` incremented and `cdc-redrive-id` = their DLQ position. Messages are redriven per aggregate
// (origin topic + key) in DLQ order: a failed head takes its parked followers along, and the aggregate's park in
// `cdc_parked` lists them in `release`, so the consumer lets exactly those through and lifts the park after the last.
import type { InMessage, OutMessage } from '../clients/kafka.ts'
import { DlqHeaders, dlqTopic } from '../events.ts'
import { recordRedrives } from '../consume/outcomes.ts'
import { PARKED_COLLECTION, parkKey, type Park } from '../consume/parking.ts'
import type { WriteOp } from '../clients/mongo.ts'
import type { Runtime } from '../runtime.ts'
import { consumedTables, discoverTopics } from '../topics.ts'
import { toEntry, type DlqEntry } from './entries.ts'
import { claimEntries, dlqPosition, recordRedriven, redrivenPositions, releaseClaims } from './ledger.ts'
import { readAt, readTopics } from './read.ts'

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
  /** List what would be redriven, change nothing (the API defaults to it; see RedriveRequest). */
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
  /** `claimed-elsewhere`: a concurrent redrive or discard holds the entry and publishes it (once). */
  action: 'redriven' | 'would-redrive' | 'kept-max-redrives' | 'claimed-elsewhere'
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

export interface Loaded {
  entry: DlqEntry
  message: InMessage
}

/** The consumed topics (or just `topic`, if consumed). */
export async function originTopics(rt: Runtime, topic?: string): Promise<string[]> {
  const tracked = await rt.tracked().refresh()
  return (await discoverTopics(rt.config, rt.kafka(), consumedTables(rt.config, tracked))).filter((t) => topic === undefined || t === topic)
}

export async function load(rt: Runtime, topic?: string): Promise<Loaded[]> {
  const origins = await originTopics(rt, topic)
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

/** Pending (not yet redriven) entries per aggregate (origin topic + key), in DLQ order; one entry per origin position. */
export function pendingGroups(loaded: Loaded[]): Map<string, Loaded[]> {
  // A consumer crash can dead-letter one message twice (same origin).
  const groups = new Map<string, Loaded[]>()
  const originOf = ({ origin }: DlqEntry) => `${origin.topic}:${origin.partition}:${origin.offset}`
  // An origin already redriven or discarded is handled, whichever of its DLQ copies the ledger names.
  const seen = new Set(loaded.filter((l) => l.entry.redriven).map((l) => originOf(l.entry)))
  for (const l of loaded) {
    const { entry } = l
    if (entry.redriven) continue
    const origin = originOf(entry)
    if (seen.has(origin)) continue
    seen.add(origin)
    const key = parkKey(entry.origin.topic, entry.key)
    groups.set(key, [...(groups.get(key) ?? []), l])
  }
  return groups
}

const positionOf = (e: DlqEntry) => dlqPosition(e.topic, e.partition, e.offset)

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

/**
 * Claims each group (all its entries, or the group is left to whoever holds them), then releases and republishes the
 * claimed ones: the park's `release` lists them before they arrive, so the consumer lets exactly those through.
 * `replace` may substitute a group's head (discard). Returns the groups published.
 */
/** The parks of the origin topics, read before the DLQ (see republishGroups). */
export async function parkSnapshot(rt: Runtime, topics: string[]): Promise<Map<string, Park>> {
  const parks = (await rt.mongo()).collection<Park>(PARKED_COLLECTION)
  const docs = (await Promise.all(topics.map((topic) => parks.find({ topic })))).flat()
  return new Map(docs.map((d) => [d._id, d]))
}

/**
 * Claims each group (all its entries, or the group is left to whoever holds them), then releases and republishes the
 * claimed ones: the park's `release` lists them before they arrive, so the consumer lets exactly those through.
 * `replace` may substitute a group's head (discard). A release is appended to what an earlier redrive released and
 * the consumer has not seen pass yet (replacing it would let these overtake it), and only to the park as it was before
 * the DLQ was read (`snapshot`): a park the consumer reset meanwhile waits behind a new failure that this read may not
 * include, so those groups are left for the next redrive. Returns the groups published.
 */
export async function republishGroups(
  rt: Runtime,
  groups: [string, Loaded[]][],
  snapshot: Map<string, Park>,
  replace: (l: Loaded) => OutMessage = republished,
): Promise<{ published: [string, Loaded[]][]; elsewhere: [string, Loaded[]][] }> {
  const store = await rt.mongo()
  const token = crypto.randomUUID()
  const claimed: [string, Loaded[]][] = []
  const elsewhere: [string, Loaded[]][] = []
  for (const g of groups) (await claimEntries(store, g[1].map((l) => positionOf(l.entry)), token)) ? claimed.push(g) : elsewhere.push(g)
  const positions = (list: [string, Loaded[]][]) => list.flatMap(([, group]) => group.map((l) => positionOf(l.entry)))
  const published: [string, Loaded[]][] = []
  try {
    const parks = store.collection<Park>(PARKED_COLLECTION)
    for (const [key, group] of claimed) {
      const park = snapshot.get(key)
      if (park) {
        const release = [...park.release, ...group.map((l) => positionOf(l.entry))]
        const releasedUpTo = String(Math.max(Number(park.releasedUpTo ?? -1), ...group.map((l) => Number(l.entry.origin.offset))))
        const r = await parks.bulkWrite([
          { updateOne: { filter: { _id: key, head: park.head, at: park.at }, update: { $set: { release, releasedUpTo } } } },
        ])
        if (r.matched === 0 && (await parks.findOne({ _id: key }))) {
          elsewhere.push([key, group])
          continue
        }
      }
      published.push([key, group])
    }
    await releaseClaims(store, positions(elsewhere.filter((g) => claimed.includes(g))), token)
    if (published.length === 0) return { published, elsewhere }
    const producer = await rt.kafka().producer()
    try {
      await producer.send(published.flatMap(([, group]) => group.map((l, i) => (i === 0 ? replace(l) : republished(l)))))
    } finally {
      await producer.disconnect().catch(() => {})
    }
  } catch (error) {
    // Nothing (or nothing known) was published: let the next redrive take them at once.
    await releaseClaims(store, positions(claimed), token).catch(() => {})
    throw error
  }
  return { published, elsewhere }
}

export async function redrive(rt: Runtime, filter: RedriveFilter): Promise<RedriveReport> {
  const report: RedriveReport = { redriven: 0, kept: 0, dryRun: filter.dryRun === true, items: [] }
  // Parks first, then the DLQ (see republishGroups).
  const snapshot = filter.dryRun === true ? new Map<string, Park>() : await parkSnapshot(rt, await originTopics(rt, filter.topic))
  const groups = pendingGroups(await load(rt, filter.topic))

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

  await withOriginals(rt, chosen.flatMap(([, group]) => group))
  const sentAt = new Date().toISOString()
  const { published, elsewhere } = await republishGroups(rt, chosen, snapshot)
  const store = await rt.mongo()
  await recordRedriven(
    store,
    published.flatMap(([, group]) => group.map((l) => ({ position: positionOf(l.entry), dlqTopic: l.entry.topic, eventId: l.entry.eventId }))),
  )
  await recordRedrives(
    store,
    rt.config.consume.outcomes,
    sentAt,
    published.flatMap(([, group]) => group.map(({ entry: e }) => ({ ...e, redriveCount: e.redriveCount + 1 }))),
  )
  for (const [, group] of published) {
    report.redriven += group.length
    report.items.push(...group.map((l) => item(l.entry, 'redriven')))
  }
  for (const [, group] of elsewhere) report.items.push(...group.map((l) => item(l.entry, 'claimed-elsewhere')))
  rt.log.info('redriven', { count: report.redriven, kept: report.kept, claimedElsewhere: elsewhere.length })
  return report
}

/**
 * DLQ copies stored by reference (the original was too large for the DLQ topic) get their original's key, value and
 * headers back from its topic, so a redrive republishes the message itself, not the reference. One whose original is
 * gone (the topic's retention) is republished as it is: the consumer dead-letters the reference again, with its error.
 */
export async function withOriginals(rt: Runtime, loaded: Loaded[]): Promise<void> {
  for (const l of loaded) {
    if (l.message.headers[DlqHeaders.reference] === undefined) continue
    const original = await readAt(rt, { topic: l.entry.origin.topic, partition: l.entry.origin.partition, offset: l.entry.origin.offset })
    if (!original) {
      rt.log.warn('the original of a DLQ entry stored by reference is gone; redriving the reference', { topic: l.entry.topic, offset: l.entry.offset })
      continue
    }
    const dlqHeaders = Object.fromEntries(Object.entries(l.message.headers).filter(([k]) => DLQ_ONLY.has(k) || k === DlqHeaders.redriveCount))
    l.message = { ...l.message, key: original.key, value: original.value, headers: { ...original.headers, ...dlqHeaders } }
  }
}

const DLQ_ONLY = new Set<string>([DlqHeaders.reference, DlqHeaders.error, DlqHeaders.topic, DlqHeaders.partition, DlqHeaders.offset, DlqHeaders.group, DlqHeaders.at, DlqHeaders.parked])

/** The original message again, on its original topic and key, counting this redrive. */
export function republished({ entry, message }: Loaded): OutMessage {
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(message.headers)) if (!DLQ_ONLY.has(k)) headers[k] = v
  headers[DlqHeaders.redriveCount] = String(entry.redriveCount + 1)
  headers[DlqHeaders.redriveId] = dlqPosition(entry.topic, entry.partition, entry.offset)
  return { topic: entry.origin.topic, key: message.key, value: message.value, headers }
}
