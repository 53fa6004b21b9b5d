// The ops port of a process that runs roles without the API (`cdc relay`, `cdc consume`, `cdc all --roles relay`):
// /healthz, /readyz and /metrics, so an orchestrator can probe and Prometheus can scrape each role on its own.
import { Hono } from 'hono'
import { healthRoutes, type Dependency } from '../api/routes/ops.ts'
import { requestContext } from '../api/middleware/request-context.ts'
import type { AppEnv } from '../api/env.ts'
import { DEFAULT_OPS_PORT } from '../config.ts'
import { relayMetrics } from '../relay/metrics.ts'
import type { Role, Runtime } from '../runtime.ts'

const NEEDS: Record<string, Dependency[]> = { relay: ['postgres', 'kafka'], consume: ['kafka', 'mongo'] }

export interface OpsServer extends Role {
  /** Where it listens; undefined when disabled (ops.port = 0) or when the default port was taken. */
  url?: URL
  /** Readiness turns on once the roles have started. */
  markStarted(): void
}

export function startOpsServer(rt: Runtime, roles: string[]): OpsServer {
  const { host, port: configured } = rt.config.ops
  const log = rt.log.child({ role: 'ops' })
  let started = false
  const none: OpsServer = { name: 'ops', markStarted: () => (started = true), stop: async () => {} }
  if (configured === 0) return none
  const needs = [...new Set(roles.flatMap((r) => NEEDS[r] ?? []))]
  const app = new Hono<AppEnv>()
  app.use(requestContext(log))
  app.route(
    '/',
    healthRoutes(rt, {
      needs,
      started: () => started,
      details: () => ({ roles, ...(roles.includes('relay') ? { relayLeader: relayMetrics.leader.get() === 1 } : {}) }),
    }),
  )
  app.notFound((c) => c.json({ error: 'not found', paths: ['/healthz', '/readyz', '/metrics'] }, 404))
  let server: ReturnType<typeof Bun.serve>
  try {
    server = Bun.serve({ hostname: host, port: configured ?? DEFAULT_OPS_PORT, fetch: app.fetch })
  } catch (error) {
    // An explicit port is a promise to the orchestrator: not keeping it is fatal. The default one is a convenience
    // (several roles on one machine would all want it): the role runs on, without probes, and says so.
    if (configured !== undefined) throw new Error(`ops.port ${configured} on ${host}: ${(error as Error).message}`)
    log.warn('ops endpoint not served: the default port is taken; set ops.port (or CDC_OPS_PORT) per role', {
      port: DEFAULT_OPS_PORT,
      error,
    })
    return none
  }
  log.info('ops endpoint serving', { url: server.url.toString(), roles })
  return {
    name: 'ops',
    url: server.url,
    markStarted: () => (started = true),
    async stop() {
      await server.stop()
    },
  }
}
