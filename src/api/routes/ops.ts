// Operations: liveness, readiness (each server probed with a short timeout), Prometheus metrics, the OpenAPI document.
// The health part is shared with the ops port of roles run without the API (src/ops/server.ts).
import { Hono } from 'hono'
import { renderMetrics } from '../../metrics.ts'
import type { Logger } from '../../log.ts'
import { registerProcessMetrics } from '../../ops/process-metrics.ts'
import { openApiDocument } from '../openapi.ts'
import type { AppDeps, AppEnv } from '../env.ts'

const PROBE_TIMEOUT_MS = 2000

export type Dependency = 'postgres' | 'kafka' | 'mongo'

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

export interface HealthOptions {
  /** The servers this process needs (readiness fails while one does not answer). */
  needs?: Dependency[]
  /** False while the process is still starting its roles (readiness 503 "starting"). */
  started?: () => boolean
  /** Extra fields for /readyz (e.g. whether this relay leads). */
  details?: () => Record<string, unknown>
}

export function healthRoutes(deps: Pick<AppDeps, 'db' | 'kafka' | 'mongo'>, options: HealthOptions = {}) {
  registerProcessMetrics()
  const needs = options.needs ?? ['postgres', 'kafka', 'mongo']
  const checks: Record<Dependency, () => Promise<unknown>> = {
    postgres: () => deps.db().query('select 1'),
    kafka: () => deps.kafka().ping(),
    mongo: async () => (await deps.mongo()).ping(),
  }
  return new Hono<AppEnv>()
    .get('/healthz', (c) => c.json({ status: 'ok' }))
    .get('/readyz', async (c) => {
      const results = await Promise.all(needs.map(async (name) => [name, await probe(name, c.get('log'), checks[name])] as const))
      const started = options.started?.() ?? true
      const ready = started && results.every(([, r]) => r.ok)
      const status = ready ? 'ready' : started ? 'unavailable' : 'starting'
      return c.json({ status, ...options.details?.(), checks: Object.fromEntries(results) }, ready ? 200 : 503)
    })
    .get('/metrics', (c) => c.text(renderMetrics(), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }))
}

export function opsRoutes(deps: AppDeps) {
  let document: unknown
  return healthRoutes(deps).get('/openapi.json', (c) => c.json((document ??= openApiDocument(deps.config))))
}
