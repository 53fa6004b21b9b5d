// DLQ admin (admin role, see middleware/auth.ts): list dead-lettered messages, redrive them (with the CLI's filters;
// a dry run unless `dryRun: false`), and discard an aggregate's dead head with a reason.
import { Hono } from 'hono'
import { DlqFilterError } from '../../redrive/index.ts'
import { DiscardConflictError, DiscardNotFoundError } from '../../redrive/discard.ts'
import { DiscardRequestSchema, DlqQuery, RedriveRequest } from '../schemas.ts'
import { writeContext } from '../write.ts'
import { jsonBody, query } from '../middleware/validate.ts'
import { pageSize } from '../cursor.ts'
import { toMicros } from '../history-time.ts'
import { ApiError } from '../problem.ts'
import type { AppDeps, AppEnv } from '../env.ts'

function filterOf(q: { topic?: string; aggregate?: string; since?: string; error?: string }, path: string) {
  return {
    ...(q.topic ? { topic: q.topic } : {}),
    ...(q.aggregate ? { aggregate: q.aggregate } : {}),
    ...(q.since ? { since: new Date(Date.parse(toMicros(q.since, `${path}since`))) } : {}),
    ...(q.error ? { error: q.error } : {}),
  }
}

/** src/redrive's filter errors (e.g. a foreign cursor) are the client's. */
const asClientError = (path: string) => (error: unknown): never => {
  if (error instanceof DlqFilterError) throw new ApiError(400, 'validation', error.message, [{ path, message: error.message }])
  if (error instanceof DiscardNotFoundError) throw new ApiError(404, 'not-found', error.message)
  if (error instanceof DiscardConflictError) throw new ApiError(409, 'conflict', error.message)
  throw error
}

export function dlqRoutes(deps: AppDeps) {
  const max = deps.config.http.maxPageSize
  return new Hono<AppEnv>()
    .get('/dlq', query(DlqQuery), async (c) => {
      const q = c.req.valid('query')
      const page = await deps.dlq
        .list({
          ...filterOf(q, 'query.'),
          limit: pageSize(q.limit, max),
          ...(q.cursor ? { cursor: q.cursor } : {}),
          ...(q.includeRedriven ? { includeRedriven: true } : {}),
        })
        .catch(asClientError('query.cursor'))
      return c.json(page)
    })
    .post('/dlq/redrive', jsonBody(RedriveRequest), async (c) => {
      const b = c.req.valid('json')
      const report = await deps.dlq
        .redrive({ ...filterOf(b, ''), ...(b.limit ? { limit: b.limit } : {}), dryRun: b.dryRun })
        .catch(asClientError('(body)'))
      c.get('log').info('dlq redrive', { redriven: report.redriven, kept: report.kept, dryRun: report.dryRun, principal: c.get('principal')?.name })
      return c.json(report)
    })
    .post('/dlq/discard', jsonBody(DiscardRequestSchema), async (c) => {
      const b = c.req.valid('json')
      const { actor } = writeContext(c)
      const report = await deps.dlq.discard({ ...b, reason: b.reason.trim(), actor }).catch(asClientError('topic'))
      c.get('log').info('dlq discard', { entry: `${b.topic}:${b.partition}:${b.offset}`, actor, eventId: report.discarded.eventId })
      return c.json(report)
    })
}
