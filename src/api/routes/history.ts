// History reads from MongoDB (`<table>_history`, written by the consumer) for every table in the tracked set (live;
// an untracked table keeps its history), named by its qualified name in any spelling (api/tracked-table.ts).
// Order: oldest first by default (version order per aggregate, time order for the audit search); `order=desc` flips it.
// Each read filters on one top-level equality (see src/consume/history.ts): `aggKey` for one aggregate, a day (actor)
// or hour (table) bucket for the audit search, so every page is index-served on real MongoDB and on FerretDB.
import { Hono, type Context } from 'hono'
import * as v from 'valibot'
import type { Doc, Filter, Store } from '../../clients/mongo.ts'
import { actorDayKey, daysOf, historyCollection, toHistoryItem } from '../../consume/history.ts'
import { AtQuery, AuditQuery, HistoryParams, HistoryQuery } from '../schemas.ts'
import { params, query } from '../middleware/validate.ts'
import { CursorInt, decodeCursor, pageOf, pageSize } from '../cursor.ts'
import { toMicros } from '../history-time.ts'
import { ApiError } from '../problem.ts'
import { resolveTable } from '../tracked-table.ts'
import type { AppDeps, AppEnv } from '../env.ts'

const VersionCursor = v.strictObject({ v: CursorInt })
/** The last item's stored occurredAt (microseconds, UTC) and event id, exactly as this API issues them. */
const TimeCursor = v.strictObject({
  t: v.pipe(v.string(), v.regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)),
  id: v.pipe(v.string(), v.regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)),
})
/** Events that carry a row image (application events, op "m", do not). */
const IMAGE_OPS = ['c', 'u', 'd', 'r']
const HOURS = Array.from({ length: 24 }, (_, h) => String(h).padStart(2, '0'))

interface TimeRange {
  from?: string
  to?: string
}

function timeRange(from: string | undefined, to: string | undefined): TimeRange {
  return {
    ...(from !== undefined ? { from: toMicros(from, 'query.from') } : {}),
    ...(to !== undefined ? { to: toMicros(to, 'query.to') } : {}),
  }
}

function occurredWithin(range: TimeRange): Filter[] {
  const bounds: Record<string, string> = {}
  if (range.from !== undefined) bounds.$gte = range.from
  if (range.to !== undefined) bounds.$lte = range.to
  return Object.keys(bounds).length ? [{ occurredAt: bounds }] : []
}

/** Extra conditions under `$and`: FerretDB still pushes down the top-level equality next to it. */
const andAlso = (conditions: Filter[]): Filter => (conditions.length ? { $and: conditions } : {})

/**
 * One table's part of an audit page: the events after the cursor in (occurredAt, _id) order, walking the day buckets
 * that exist (of the actor, or of the table) inside the window, each bucket one indexed equality read.
 */
async function auditPart(
  store: Store,
  table: string,
  q: { actor?: string; type?: string },
  range: TimeRange,
  dir: 1 | -1,
  after: { t: string; id: string } | undefined,
  want: number,
): Promise<Doc[]> {
  const cmp = dir === 1 ? '$gt' : '$lt'
  const keyset: Filter[] = after ? [{ $or: [{ occurredAt: { [cmp]: after.t } }, { occurredAt: after.t, _id: { [cmp]: after.id } }] }] : []
  // The first and last instant the page can hold; buckets outside them are not read.
  const lo = [range.from, dir === 1 ? after?.t : undefined].filter((x) => x !== undefined).sort().at(-1)
  const hi = [range.to, dir === -1 ? after?.t : undefined].filter((x) => x !== undefined).sort().at(0)
  const within = (bucket: string) => (lo === undefined || bucket >= lo.slice(0, bucket.length)) && (hi === undefined || bucket <= hi.slice(0, bucket.length))
  const days = (await daysOf(store, table, q.actor ?? null)).filter(within)
  // An actor's day is small; a whole table's day can be too big to read and sort at once: walk its hours instead.
  const buckets = q.actor !== undefined ? days : days.flatMap((d) => HOURS.map((h) => `${d}T${h}`)).filter(within)
  if (dir === -1) buckets.reverse()
  const collection = store.collection(historyCollection(table))
  const read = (bucketKey: string, limit: number) => {
    const bucket = q.actor !== undefined ? { actorDay: actorDayKey(bucketKey, q.actor) } : { hour: bucketKey }
    const filter = { ...bucket, ...(q.type ? { type: q.type } : {}), ...andAlso([...occurredWithin(range), ...keyset]) }
    return collection.find(filter, { sort: { occurredAt: dir, _id: dir }, limit })
  }
  // Buckets in order, several at once, as many per round as the last round's density says the page still needs: a
  // sparse actor or table takes few round trips, and a dense one is not over-read (FerretDB decodes every document of
  // a bucket it reads to sort it: two hours of a busy table were 4× the page). The first round reads one hour of a
  // table, or two days of an actor (a busy actor's day holds about half a page); an empty round doubles the next.
  const out: Doc[] = []
  for (let i = 0, width = q.actor !== undefined ? 2 : 1; i < buckets.length && out.length < want; ) {
    const round = buckets.slice(i, i + width)
    const before = out.length
    for (const docs of await Promise.all(round.map((b) => read(b, want - before)))) out.push(...docs)
    i += round.length
    const perBucket = (out.length - before) / round.length
    width = Math.min(32, perBucket > 0 ? Math.max(1, Math.ceil((want - out.length) / perBucket)) : width * 2)
  }
  return out.slice(0, want)
}

export function historyRoutes(deps: AppDeps) {
  const max = deps.config.http.maxPageSize
  const collection = async (table: string) => (await deps.mongo()).collection(historyCollection(table))
  /** The canonical name of the tracked table `raw` names, or 404. */
  const trackedTable = async (raw: string) => {
    const table = await resolveTable(deps.tracked(), raw)
    if (!table) throw new ApiError(404, 'not-found', `table ${JSON.stringify(raw)} is not tracked`)
    return table.aggregateType
  }

  /** GET /history/:table/:id and its aliases /<table>/:id/history. */
  const aggregateHistory = async (c: Context<AppEnv>, raw: string, id: string, q: v.InferOutput<typeof HistoryQuery>) => {
    const table = await trackedTable(raw)
    const size = pageSize(q.limit, max)
    const dir = q.order === 'desc' ? -1 : 1
    const after = decodeCursor(VersionCursor, q.cursor)?.v
    const filter: Filter = {
      aggKey: id,
      ...(q.type ? { type: q.type } : {}),
      ...(q.actor ? { 'actor.id': q.actor } : {}),
      ...(q.field ? { 'changes.path': q.field } : {}),
      ...(after !== undefined ? { version: dir === 1 ? { $gt: after } : { $lt: after } } : {}),
      ...andAlso(occurredWithin(timeRange(q.from, q.to))),
    }
    const docs = await (await collection(table)).find(filter, { sort: { version: dir }, limit: size + 1 })
    return c.json(pageOf(docs.map(toHistoryItem), size, (last) => ({ v: last.version })))
  }

  const app = new Hono<AppEnv>()
    .get('/history', query(AuditQuery), async (c) => {
      const q = c.req.valid('query')
      const one = q.table === undefined ? undefined : await resolveTable(deps.tracked(), q.table)
      if (q.table !== undefined && !one) {
        throw new ApiError(400, 'validation', 'unknown table', [{ path: 'query.table', message: `not a tracked table: ${q.table}` }])
      }
      const size = pageSize(q.limit, max)
      const dir = q.order === 'desc' ? -1 : 1
      const after = decodeCursor(TimeCursor, q.cursor)
      const range = timeRange(q.from, q.to)
      const store = await deps.mongo()
      const tables = one ? [one.aggregateType] : deps.tracked().list().map((t) => t.aggregateType)
      const perTable = await Promise.all(tables.map((t) => auditPart(store, t, q, range, dir, after, size + 1)))
      // Keyset on (occurredAt, event id): stable across tables and pages even when timestamps tie.
      const key = (d: Doc) => `${d.occurredAt as string}\u0000${d._id as string}`
      const merged = perTable.flat().sort((a, b) => (key(a) < key(b) ? -dir : key(a) > key(b) ? dir : 0))
      const page = pageOf(merged.slice(0, size + 1), size, (last) => ({ t: last.occurredAt, id: last._id }))
      return c.json({ items: page.items.map(toHistoryItem), nextCursor: page.nextCursor })
    })
    .get('/history/:table/:id/at', params(HistoryParams), query(AtQuery), async (c) => {
      const { id } = c.req.valid('param')
      const table = await trackedTable(c.req.valid('param').table)
      const ts = toMicros(c.req.valid('query').ts, 'query.ts')
      const [doc] = await (await collection(table)).find(
        { aggKey: id, occurredAt: { $lte: ts }, op: { $in: IMAGE_OPS } },
        { sort: { version: -1 }, limit: 1 },
      )
      if (!doc) throw new ApiError(404, 'not-found', `${table} ${id} did not exist at ${ts}`)
      const deleted = doc.op === 'd'
      // After a delete the last image before it (the delete's `before`), flagged deleted.
      const row = deleted ? doc.before : doc.after
      return c.json({ aggregate: doc.aggregate, version: doc.version, deleted, row: row ?? null })
    })
    .get('/history/:table/:id', params(HistoryParams), query(HistoryQuery), (c) => {
      const { table, id } = c.req.valid('param')
      return aggregateHistory(c, table, id, c.req.valid('query'))
    })
  // `/<table>/:id/history` is the same as `/history/<table>/:id`, for every tracked table.
  app.get('/:table/:id/history', params(HistoryParams), query(HistoryQuery), (c) => {
    const { table, id } = c.req.valid('param')
    return aggregateHistory(c, table, id, c.req.valid('query'))
  })
  return app
}
