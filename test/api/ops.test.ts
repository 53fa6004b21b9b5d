// Health, readiness (with unreachable servers for real), metrics and the generated OpenAPI document.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { createApiEnv, type ApiEnv } from './support.ts'
import { createApp } from '../../src/api/app.ts'
import { connect } from '../../src/clients/postgres.ts'
import { createKafka } from '../../src/clients/kafka.ts'
import { connectMongo } from '../../src/clients/mongo.ts'
import { createLogger } from '../../src/log.ts'
import { createRuntime } from '../../src/runtime.ts'
import { dlqAdmin } from '../../src/api/server.ts'

let api: ApiEnv
beforeAll(async () => {
  api = await createApiEnv()
})
afterAll(() => api.cleanup())

test('healthz answers without touching any server', async () => {
  const res = await api.call('GET', '/healthz')
  expect(res).toMatchObject({ status: 200, body: { status: 'ok' } })
})

test('readyz: 200 with every server reachable', async () => {
  const res = await api.call('GET', '/readyz')
  expect([res.status, res.body]).toEqual([200, expect.anything()])
  expect(res.body.status).toBe('ready')
  for (const server of ['postgres', 'kafka', 'mongo']) expect(res.body.checks[server]).toMatchObject({ ok: true })
})

test('readyz: 503 naming the servers that cannot be reached, within the probe timeout; CRUD answers 503', async () => {
  // Nothing listens on port 1: connections are refused for real.
  const db = connect({ url: 'postgres://cdc:cdc@127.0.0.1:1/cdc', max: 1 })
  const kafka = createKafka({ brokers: ['127.0.0.1:1'], clientId: 'ready-test', connectionTimeoutMs: 500 })
  const app = createApp({
    config: api.rt.config,
    log: api.rt.log,
    db: () => db,
    kafka: () => kafka,
    mongo: () => connectMongo({ url: 'mongodb://127.0.0.1:1', database: 'x', serverSelectionTimeoutMs: 500 }),
    tracked: api.rt.tracked,
    dlq: {
      list: async () => ({ items: [], nextCursor: null }),
      redrive: async (f) => ({ redriven: 0, kept: 0, dryRun: f.dryRun === true, items: [] }),
      discard: async (r) => {
        throw new Error(`no DLQ here: ${r.topic}`)
      },
    },
  })
  try {
    const started = Date.now()
    const res = await app.request('/readyz')
    expect(Date.now() - started).toBeLessThan(5000)
    expect(res.status).toBe(503)
    const body: any = await res.json()
    expect(body.status).toBe('unavailable')
    for (const server of ['postgres', 'kafka', 'mongo']) expect(body.checks[server]).toMatchObject({ ok: false, error: expect.any(String) })
    expect(JSON.stringify(body)).not.toContain('cdc:cdc')
    // Which dependency is down, never its address (the driver messages name host and port; they go to the log).
    expect(JSON.stringify(body)).not.toMatch(/127\.0\.0\.1|localhost|:1\b|ECONNREFUSED/)

    const write = await app.request('/customers', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'a', email: 'a@example.com' }) })
    expect(write.status).toBe(503)
    expect(write.headers.get('content-type')).toBe('application/problem+json')
    const history = await app.request('/history/customers/1')
    expect(history.status).toBe(503)
  } finally {
    await db.end(1)
    await kafka.close()
  }
})

test('metrics count requests by route and status, with a latency histogram', async () => {
  await api.call('GET', '/customers/424242')
  await api.call('GET', '/customers/424243')
  const res = await api.app.request('/metrics')
  expect(res.headers.get('content-type')).toStartWith('text/plain')
  const text = await res.text()
  const line = text.split('\n').find((l) => l.startsWith('cdc_http_requests_total{') && l.includes('route="/customers/:id"') && l.includes('status="404"'))
  expect(line).toBeDefined()
  expect(Number(line!.split(' ').at(-1))).toBeGreaterThanOrEqual(2)
  expect(text).toContain('cdc_http_request_duration_seconds_bucket{method="GET",route="/customers/:id",le="0.005"}')
  // Random paths share one label.
  await api.call('GET', `/nothing-${Math.random()}`)
  expect(await (await api.app.request('/metrics')).text()).toContain('route="unmatched"')
})

test('openapi.json describes every route with the request schemas that validate them', async () => {
  const { status, body } = await api.call('GET', '/openapi.json')
  expect(status).toBe(200)
  expect(body.openapi).toBe('3.1.0')
  for (const path of ['/customers', '/customers/{id}', '/products/{id}', '/orders/{id}/status', '/history/{table}/{id}', '/history/{table}/{id}/at', '/history', '/dlq', '/dlq/redrive', '/readyz', '/metrics']) {
    expect(body.paths[path]).toBeDefined()
  }
  const create = body.paths['/customers'].post.requestBody.content['application/json'].schema
  expect(create).toMatchObject({ type: 'object', additionalProperties: false, required: ['name', 'email'] })
  expect(create.properties.name).toMatchObject({ type: 'string', maxLength: 200 })
  const order = body.paths['/orders'].post.requestBody.content['application/json'].schema
  expect(order.properties.lines).toMatchObject({ type: 'array', minItems: 1, maxItems: 500 })
  expect(order.properties.lines.items.properties.quantity).toMatchObject({ type: 'integer', minimum: 1 })
  const status200 = body.paths['/orders/{id}/status'].post.requestBody.content['application/json'].schema
  expect(status200.properties.status.enum).toEqual(['PLACED', 'PAYMENT_CONFIRMED', 'SHIPPED', 'DELIVERED', 'CANCELLED'])
  const id = body.paths['/customers/{id}'].get.parameters.find((p: { name: string }) => p.name === 'id')
  expect(id).toMatchObject({ in: 'path', required: true, schema: { type: 'string', pattern: '^[1-9][0-9]{0,15}$' } })
  expect(body.paths['/customers'].get.responses.default.content['application/problem+json']).toBeDefined()
})

test('an unexpected error is a 500 problem without internals, logged with the request id', async () => {
  const lines: string[] = []
  const broken = await createApiEnv(() => {}, { log: createLogger({}, (l) => lines.push(l)) })
  try {
    // The schema changes under the running API: its queries now fail in a way no input validation foresaw.
    await broken.rt.db().query('alter table customers rename to customers_moved')
    const res = await broken.call('GET', '/customers', { headers: { 'x-request-id': 'boom-1' } })
    expect(res.status).toBe(500)
    expect(res.headers.get('content-type')).toBe('application/problem+json')
    expect(res.body).toMatchObject({ status: 500, requestId: 'boom-1', detail: expect.stringContaining('request id') })
    expect(JSON.stringify(res.body)).not.toMatch(/customers_|relation|does not exist|\.ts/)
    const logged = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'unhandled error')
    expect(logged).toMatchObject({ level: 'error', requestId: 'boom-1', error: expect.stringContaining('customers') })
  } finally {
    await broken.cleanup()
  }
})

test('DLQ admin while Kafka is unreachable is a 503 problem, not a 500', async () => {
  const config = structuredClone(api.rt.config)
  config.kafka.brokers = ['127.0.0.1:1']
  const rt = createRuntime(config, api.rt.log)
  const app = createApp({ config, log: api.rt.log, db: api.rt.db, kafka: rt.kafka, mongo: api.rt.mongo, tracked: api.rt.tracked, dlq: dlqAdmin(rt) })
  try {
    const res = await app.request('/dlq')
    expect(res.status).toBe(503)
    expect(res.headers.get('content-type')).toBe('application/problem+json')
  } finally {
    await rt.close()
  }
})

test('/ redirects to the console, /ui/ to /ui and a console page with a trailing slash to the page', async () => {
  const root = await api.app.request('/')
  expect([root.status, root.headers.get('location')]).toEqual([302, '/ui'])
  const slash = await api.app.request('/ui/')
  expect([slash.status, slash.headers.get('location')]).toEqual([301, '/ui'])
  expect((await api.app.request('/ui')).status).not.toBe(404)
  const page = await api.app.request('/ui/audit/?actor=bob')
  expect([page.status, page.headers.get('location')]).toEqual([301, '/ui/audit?actor=bob'])
  const doubled = await api.app.request('/ui//')
  expect([doubled.status, doubled.headers.get('location')]).toEqual([301, '/ui'])
})
