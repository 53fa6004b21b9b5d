// The http.requireDeleteReason policy: a DELETE must say why (X-Reason), so the history never has an unexplained removal.
import type { MiddlewareHandler } from 'hono'
import type { Config } from '../../config.ts'
import { ApiError } from '../problem.ts'
import type { AppEnv } from '../env.ts'

export function requireDeleteReason(config: Config): MiddlewareHandler<AppEnv> {
  return async function requireDeleteReason(c, next) {
    if (config.http.requireDeleteReason && !c.req.header('x-reason')?.trim()) {
      throw new ApiError(400, 'reason-required', 'deletes need an X-Reason header (http.requireDeleteReason)', [
        { path: 'headers.x-reason', message: 'required for DELETE' },
      ])
    }
    await next()
  }
}
