// Operations: liveness, readiness (each server probed with a short timeout), Prometheus metrics, the OpenAPI document.
import { Hono } from 'hono'
import { renderMetrics } from '../../metrics.ts'
import { scrub } from '../../log.ts'
import { openApiDocument } from '../openapi.ts'
import type { AppDeps, AppEnv } from '../env.ts'

const PROBE_TIMEOUT_MS = 2000

async function probe(check: () => Promise<unknown>) {
  const started = performance.now()
  let timer: Timer | undefined
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS)
      }),
    ])
    return { ok: true, ms: Math.round(performance.now() - started) }
  } catch (error) {
    return { ok: false, ms: Math.round(performance.now() - started), error: scrub((error as Error).message ?? String(error)) }
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
        probe(() => deps.db().query('select 1')),
        probe(() => deps.kafka().ping()),
        probe(async () => (await deps.mongo()).ping()),
      ])
      const ready = postgres.ok && kafka.ok && mongo.ok
      return c.json({ status: ready ? 'ready' : 'unavailable', checks: { postgres, kafka, mongo } }, ready ? 200 : 503)
    })
    .get('/metrics', (c) => c.text(renderMetrics(), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }))
    .get('/openapi.json', (c) => c.json((document ??= openApiDocument(deps.config))))
}
