// A deadline per request: a handler still working after http.requestTimeoutMs is answered with a 503 problem instead
// of being cut off by Bun's idle timeout without any response (server.ts keeps that timeout above the deadline). The
// request's `signal` is aborted at the deadline so work that takes a signal stops too; work that does not runs on,
// and its late result is dropped.
import type { MiddlewareHandler } from 'hono'
import { ApiError } from '../problem.ts'
import type { AppEnv } from '../env.ts'

export function deadline(ms: number): MiddlewareHandler<AppEnv> {
  return async function deadline(c, next) {
    const controller = new AbortController()
    c.set('signal', controller.signal)
    let timer: Timer | undefined
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort(new Error(`request deadline of ${ms} ms passed`))
        reject(new ApiError(503, 'timeout', `the request took longer than ${ms} ms (http.requestTimeoutMs); retry later`, undefined, { 'Retry-After': '5' }))
      }, ms)
    })
    const work = next()
    // The handler may still fail after the deadline answered; that failure has no one left to tell.
    work.catch(() => {})
    try {
      await Promise.race([work, expired])
    } finally {
      clearTimeout(timer)
    }
  }
}
