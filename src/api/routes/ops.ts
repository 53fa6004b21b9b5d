// Operations: liveness, readiness (each server probed with a short timeout), Prometheus metrics, the OpenAPI document.
import { Hono } from 'hono'
import { renderMetrics } from '../../metrics.ts'
import type { Logger } from '../../log.ts'
import { openApiDocument } from '../openapi.ts'
import type { AppDeps, AppEnv } from '../env.ts'

const PROBE_TIMEOUT_MS = 2000

class ProbeTimeout extends Error {}

/**
 * One dependency's state. The public answer says only which one is down and how (unreachable or no answer in time):
 * driver messages carry host names and addresses, so they go to the log instead.
 */
async function probe(name: string, log: Logger, check: () => Promise<unknown>) {
  const started = performance.now()
  let timer: Timer | undefined
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new ProbeTimeout()), PROBE_TIMEOUT_MS)
      }),
    ])
    return { ok: true, ms: Math.round(performance.now() - started) }
  } catch (error) {
    log.warn('readiness probe failed', { dependency: name, error })
    const reason = error instanceof ProbeTimeout ? `no answer within ${PROBE_TIMEOUT_MS} ms` : 'unreachable or failing'
    return { ok: false, ms: Math.round(performance.now() - started), error: reason }
  } finally {
    clearTimeout(timer)
  }
}

export function opsRoutes(deps: AppDeps) {
  let document: unknown
  return new Hono<AppEnv>()
    .get('/healthz', (c) => c.json({ status: 'ok' }))
    .get('/readyz', async (c) => {
      const [postgres, kafka, mongo] = await Promise.all([
        probe('postgres', c.get('log'), () => deps.db().query('select 1')),
        probe('kafka', c.get('log'), () => deps.kafka().ping()),
        probe('mongo', c.get('log'), async () => (await deps.mongo()).ping()),
      ])
      const ready = postgres.ok && kafka.ok && mongo.ok
      return c.json({ status: ready ? 'ready' : 'unavailable', checks: { postgres, kafka, mongo } }, ready ? 200 : 503)
    })
    .get('/metrics', (c) => c.text(renderMetrics(), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }))
    .get('/openapi.json', (c) => c.json((document ??= openApiDocument(deps.config))))
}
