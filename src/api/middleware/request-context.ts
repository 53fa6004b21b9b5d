// First middleware of every request: the request id (X-Request-Id, or a new one; echoed back), a per-request logger,
// one structured access-log line and the HTTP metrics. Tokens and bodies are never logged.
import type { MiddlewareHandler } from 'hono'
import { routePath } from 'hono/route'
import type { Logger } from '../../log.ts'
import { counter, histogram } from '../../metrics.ts'
import type { AppEnv } from '../env.ts'

const requests = counter('cdc_http_requests_total', 'HTTP requests by route, method and status')
const latency = histogram('cdc_http_request_duration_seconds', 'HTTP request latency by route and method')

const PROBES = new Set(['/healthz', '/readyz', '/metrics'])

/**
 * Printable ASCII, bounded: a request id that is not is replaced by a fresh one instead of being echoed or logged; a
 * causation id that is not is refused (src/api/write.ts).
 */
export const REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,200}$/

export function requestContext(log: Logger): MiddlewareHandler<AppEnv> {
  return async function requestContext(c, next) {
    const started = performance.now()
    const given = c.req.header('x-request-id')
    const requestId = given && REQUEST_ID.test(given) ? given : crypto.randomUUID()
    c.set('requestId', requestId)
    c.set('log', log.child({ requestId }))
    c.set('principal', null)
    c.header('X-Request-Id', requestId)
    await next()
    // The last matched route is the handler's pattern; only middleware ('/*') matched means no route did. Unmatched
    // paths share one label so random URLs cannot blow up the metric cardinality.
    const last = routePath(c, -1)
    const route = last === '/*' || last === '*' || last === '' ? 'unmatched' : last
    const seconds = (performance.now() - started) / 1000
    requests.inc({ route, method: c.req.method, status: c.res.status })
    latency.observe(seconds, { route, method: c.req.method })
    // Probes and scrapes come every few seconds: at info they would drown the log (they still count in the metrics).
    const level = PROBES.has(route) && c.res.status < 500 ? 'debug' : 'info'
    c.get('log')[level]('http request', {
      method: c.req.method,
      route,
      path: c.req.path,
      status: c.res.status,
      ms: Math.round(seconds * 10_000) / 10,
      principal: c.get('principal')?.name,
    })
  }
}
