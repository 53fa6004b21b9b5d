// The Hono app: middleware in order (request context → deadline → Host allow-list → console → CORS → auth → body
// limit), the routes, and the one error handler that turns anything thrown into a problem document.
import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { cors } from 'hono/cors'
import { HTTPException } from 'hono/http-exception'
import { StoreError } from '../clients/mongo.ts'
import { ApiError, problemResponse } from './problem.ts'
import { requestContext } from './middleware/request-context.ts'
import { auth } from './middleware/auth.ts'
import { deadline } from './middleware/deadline.ts'
import { hostCheck } from './middleware/host-check.ts'
import { customerRoutes } from './routes/customers.ts'
import { productRoutes } from './routes/products.ts'
import { orderRoutes } from './routes/orders.ts'
import { historyRoutes } from './routes/history.ts'
import { stateRoutes } from './routes/state.ts'
import { dlqRoutes } from './routes/dlq.ts'
import { eventRoutes } from './routes/events.ts'
import { opsRoutes } from './routes/ops.ts'
import { createConsole } from '../ui/console.tsx'
import type { AppDeps, AppEnv } from './env.ts'

/** postgres.js connection failures: the database is unreachable, not the request wrong. */
const PG_UNAVAILABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT', '57P01', '57P03'])

export function createApp(deps: AppDeps) {
  const { http } = deps.config
  const app = new Hono<AppEnv>()
  app.use(requestContext(deps.log))
  app.use(deadline(http.requestTimeoutMs))
  app.use(hostCheck(http))
  // A browser pointed at the server lands on the console; `/ui/` is the console's home like `/ui`, and any console
  // page with a trailing slash is that page (query kept; the target always starts with /ui, so never another host).
  app.get('/', (c) => c.redirect('/ui', 302))
  app.get('/ui/*', async (c, next) => {
    const url = new URL(c.req.url)
    if (!url.pathname.endsWith('/')) return next()
    return c.redirect(url.pathname.replace(/\/+$/, '') + url.search, 301)
  })
  // The console before CORS and bearer auth: it has its own cookie session, CSRF checks and headers (src/ui).
  app.route('/ui', createConsole({ ...deps, api: (path, init) => app.request(path, init) }))
  if (http.corsOrigins.length > 0) {
    app.use(
      cors({
        origin: http.corsOrigins,
        allowHeaders: ['Authorization', 'Content-Type', 'X-Actor', 'X-Reason', 'X-Request-Id', 'X-Causation-Id'],
        allowMethods: ['GET', 'POST', 'PATCH', 'DELETE'],
        exposeHeaders: ['X-Request-Id', 'Location'],
        maxAge: 600,
      }),
    )
  }
  app.use(auth(http.tokens))
  app.use(
    bodyLimit({
      maxSize: http.bodyLimit,
      onError: () => {
        // The rest of the body is never read, so the connection cannot carry another request (RFC 9110 §15.5.14).
        throw new ApiError(413, 'too-large', `the request body exceeds ${http.bodyLimit} bytes (http.bodyLimit)`, undefined, {
          Connection: 'close',
        })
      },
    }),
  )
  app.route('/', opsRoutes(deps))
  app.route('/', stateRoutes(deps))
  // The demo application only when enabled; its paths then win over the generic `/:table/:id/history` alias.
  if (deps.config.demo.enabled) {
    app.route('/customers', customerRoutes(deps))
    app.route('/products', productRoutes(deps))
    app.route('/orders', orderRoutes(deps))
  }
  app.route('/', dlqRoutes(deps))
  app.route('/', eventRoutes(deps))
  app.route('/', historyRoutes(deps))
  app.notFound((c) => problemResponse(c, new ApiError(404, 'not-found', `no route for ${c.req.method} ${c.req.path}`)))
  app.onError((error, c) => problemResponse(c, toApiError(error, c.get('log') ?? deps.log)))
  return app
}

function toApiError(error: unknown, log: AppDeps['log']): ApiError {
  if (error instanceof ApiError) return error
  if (error instanceof HTTPException && error.status < 500) return new ApiError(error.status, 'bad-request', error.message || 'bad request')
  if ((error instanceof StoreError && error.transient) || isPgUnavailable(error) || isKafkaUnavailable(error)) {
    log.warn('dependency unavailable', { error })
    return new ApiError(503, 'unavailable', 'a backing service is unavailable; retry later', undefined, { 'Retry-After': '1' })
  }
  // Unexpected: logged with the request id (the child logger carries it), answered without internals.
  log.error('unhandled error', { error, stack: (error as Error)?.stack?.split('\n').slice(0, 6).join(' | ') })
  return new ApiError(500, 'internal', 'an unexpected error occurred; quote the request id when reporting it')
}

/** kafkajs connection failures (DLQ admin while Kafka is down), recognised by name: only clients/ imports kafkajs. */
function isKafkaUnavailable(error: unknown) {
  return /^KafkaJS(Connection|NumberOfRetriesExceeded|BrokerNotFound|RequestTimeout)/.test((error as Error | null)?.name ?? '')
}

function isPgUnavailable(error: unknown) {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && PG_UNAVAILABLE.has(code)
}
