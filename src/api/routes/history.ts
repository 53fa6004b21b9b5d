// History reads from MongoDB (`<table>_history`, written by the consumer) for every table in the tracked set (live;
// an untracked table keeps its history), named by its qualified name in any spelling (api/tracked-table.ts).
// Order: oldest first by default (version order per aggregate, time order for the audit search); `order=desc` flips it.
import { Hono, type Context } from 'hono'
import * as v from 'valibot'
import type { Doc, Filter } from '../../clients/mongo.ts'
import { AtQuery, AuditQuery, HistoryParams, HistoryQuery } from '../schemas.ts'
import { params, query } from '../middleware/validate.ts'
import { CursorInt, decodeCursor, pageOf, pageSize } from '../cursor.ts'
import { toMicros } from '../history-time.ts'
import { ApiError } from '../problem.ts'
import { resolveTable } from '../tracked-table.ts'
import { historyCollection } from '../../consume/history.ts'
import type { AppDeps, AppEnv } from '../env.ts'

const VersionCursor = v.strictObject({ v: CursorInt })
/** The last item's stored occurredAt (microseconds, UTC) and event id, exactly as this API issues them. */
const TimeCursor = v.strictObject({
  t: v.pipe(v.string(), v.regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)),
  id: v.pipe(v.string(), v.regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)),
})
/** Events that carry a row image (application events, op "m", do not). */
const IMAGE_OPS = ['c', 'u', 'd', 'r']

/** A history document as served: the envelope plus storedAt and kafka, without MongoDB's `_id`. */
function toItem(doc: Doc) {
  const { _id, ...item } = doc
  return item
}

function timeRange(from: string | undefined, to: string | undefined): Filter {
  const range: Record<string, string> = {}
  if (from !== undefined) range.$gte = toMicros(from, 'query.from')
  if (to !== undefined) range.$lte = toMicros(to, 'query.to')
  return Object.keys(range).length ? { occurredAt: range } : {}
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
      'aggregate.id': id,
      ...timeRange(q.from, q.to),
      ...(q.type ? { type: q.type } : {}),
      ...(q.actor ? { 'actor.id': q.actor } : {}),
      ...(q.field ? { 'changes.path': q.field } : {}),
      ...(after !== undefined ? { version: dir === 1 ? { $gt: after } : { $lt: after } } : {}),
    }
    const docs = await (await collection(table)).find(filter, { sort: { version: dir }, limit: size + 1 })
    return c.json(pageOf(docs.map(toItem), size, (last) => ({ v: last.version })))
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
      const cmp = dir === 1 ? '$gt' : '$lt'
      const filter: Filter = {
        ...timeRange(q.from, q.to),
        ...(q.actor ? { 'actor.id': q.actor } : {}),
        ...(q.type ? { type: q.type } : {}),
      }
      // Keyset on (occurredAt, event id): stable across tables and pages even when timestamps tie.
      const keyset: Filter = after ? { $or: [{ occurredAt: { [cmp]: after.t } }, { occurredAt: after.t, _id: { [cmp]: after.id } }] } : {}
      const where = after ? { $and: [filter, keyset] } : filter
      const tables = one ? [one.aggregateType] : deps.tracked().list().map((t) => t.aggregateType)
      const perTable = await Promise.all(
        tables.map(async (t) => (await collection(t)).find(where, { sort: { occurredAt: dir, _id: dir }, limit: size + 1 })),
      )
      const key = (d: Doc) => `${d.occurredAt as string}\u0000${d._id as string}`
      const merged = perTable.flat().sort((a, b) => (key(a) < key(b) ? -dir : key(a) > key(b) ? dir : 0))
      const page = pageOf(merged.slice(0, size + 1), size, (last) => ({ t: last.occurredAt, id: last._id }))
      return c.json({ items: page.items.map(toItem), nextCursor: page.nextCursor })
    })
    .get('/history/:table/:id/at', params(HistoryParams), query(AtQuery), async (c) => {
      const { id } = c.req.valid('param')
      const table = await trackedTable(c.req.valid('param').table)
      const ts = toMicros(c.req.valid('query').ts, 'query.ts')
      const [doc] = await (await collection(table)).find(
        { 'aggregate.id': id, occurredAt: { $lte: ts }, op: { $in: IMAGE_OPS } },
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
