// GET /state/:table/:id: the read model (`<table>_state`, kept by the consumer): one aggregate's latest row, version
// and whether it is deleted, by one `_id` lookup — flat at any history size. Only tracked tables are readable.
import { Hono } from 'hono'
import { readStates } from '../../consume/state.ts'
import { HistoryParams } from '../schemas.ts'
import { params } from '../middleware/validate.ts'
import { ApiError } from '../problem.ts'
import { resolveTable } from '../tracked-table.ts'
import type { AppDeps, AppEnv } from '../env.ts'

export function stateRoutes(deps: AppDeps) {
  return new Hono<AppEnv>().get('/state/:table/:id', params(HistoryParams), async (c) => {
    const { table: raw, id } = c.req.valid('param')
    const table = (await resolveTable(deps.tracked(), raw))?.aggregateType
    if (!table) throw new ApiError(404, 'not-found', `table ${JSON.stringify(raw)} is not tracked`)
    const doc = (await readStates(await deps.mongo(), table, [id])).get(id)
    if (!doc) throw new ApiError(404, 'not-found', `${table} ${id} has no state (no event of it was consumed yet)`)
    return c.json({
      aggregate: doc.aggregate,
      version: doc.version,
      deleted: doc.deleted,
      row: doc.row ?? null,
      occurredAt: doc.occurredAt,
      eventId: doc.eventId,
    })
  })
}
