// The API over a real socket: `startApi` on an ephemeral port, the open-bind guard, CORS, chunked bodies over the
// limit, and `cdc serve` as a process (started, answering, stopped by SIGTERM).
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { createApiEnv, type ApiEnv } from './support.ts'
import { startApi } from '../../src/api/server.ts'
import { ConfigError } from '../../src/config.ts'
import { ROOT } from '../support/env.ts'
import { stackConfigEnv } from '../support/stack-env.ts'

let api: ApiEnv
let server: Awaited<ReturnType<typeof startApi>>
beforeAll(async () => {
  api = await createApiEnv((c) => {
    c.http.port = 0 as number // ephemeral: Bun picks a free port
    c.http.corsOrigins = ['https://app.example.com']
    c.http.bodyLimit = 1000
  })
  server = await startApi(api.rt)
})
afterAll(async () => {
  await server?.stop()
  await api.cleanup()
})

test('serves JSON over HTTP and echoes the request id', async () => {
  const res = await fetch(new URL('/customers', server.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-request-id': 'sock-1' },
    body: JSON.stringify({ name: 'Socket', email: 'socket@example.com' }),
  })
  expect(res.status).toBe(201)
  expect(res.headers.get('x-request-id')).toBe('sock-1')
  const generated = await fetch(new URL('/healthz', server.url))
  expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
})

test('a chunked body over http.bodyLimit is a 413 problem', async () => {
  const chunks = new ReadableStream({
    start(controller) {
      for (let i = 0; i < 20; i++) controller.enqueue(new TextEncoder().encode(`{"name":"${'x'.repeat(100)}`))
      controller.close()
    },
  })
  const before = await api.counts()
  // Bun's fetch would reuse the socket despite the 413's `Connection: close` (curl does close it), so use a fresh one.
  const res = await fetch(new URL('/customers', server.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: chunks, keepalive: false })
  expect(res.status).toBe(413)
  expect(res.headers.get('connection')).toBe('close')
  expect(res.headers.get('content-type')).toBe('application/problem+json')
  expect(await api.counts()).toEqual(before)
})

test('CORS: allowed origins get the headers, others do not', async () => {
  const preflight = await fetch(new URL('/customers', server.url), {
    method: 'OPTIONS',
    headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-reason' },
  })
  expect(preflight.status).toBeLessThan(300)
  expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example.com')
  expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('x-reason')
  const other = await fetch(new URL('/healthz', server.url), { headers: { origin: 'https://evil.example.com' } })
  expect(other.headers.get('access-control-allow-origin')).toBeNull()
})

test('an open API (no tokens) refuses a non-loopback host unless http.allowOpenBind', async () => {
  const open = structuredClone(api.rt.config)
  open.http.host = '0.0.0.0'
  open.http.port = 0 as number
  const rt = { ...api.rt, config: open }
  await expect(startApi(rt)).rejects.toBeInstanceOf(ConfigError)
  open.http.allowOpenBind = true
  const started = await startApi(rt)
  await started.stop()
})

test('`cdc serve` runs as a process, answers, and stops cleanly on SIGTERM; a refused bind exits 2', async () => {
  const port = 20_000 + Math.floor(Math.random() * 20_000)
  const env = { ...process.env, ...stackConfigEnv(), CDC_POSTGRES_URL: api.config.postgres.url, CDC_MONGO_DATABASE: api.config.mongo.database, CDC_HTTP_PORT: String(port), CDC_LOG_LEVEL: 'warn', CDC_DEMO_ENABLED: 'true' }
  const proc = Bun.spawn(['bun', 'src/cli.ts', 'serve'], { cwd: ROOT, env, stdout: 'pipe', stderr: 'pipe' })
  try {
    let ok = false
    for (let i = 0; i < 100 && !ok; i++) {
      ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)
      if (!ok) await Bun.sleep(100)
    }
    expect(ok).toBe(true)
    const list = await fetch(`http://127.0.0.1:${port}/customers`)
    expect(list.status).toBe(200)
    proc.kill('SIGTERM')
    expect(await proc.exited).toBe(0)
  } finally {
    proc.kill('SIGKILL')
  }
  const refused = Bun.spawn(['bun', 'src/cli.ts', 'serve'], { cwd: ROOT, env: { ...env, CDC_HTTP_HOST: '0.0.0.0' }, stdout: 'pipe', stderr: 'pipe' })
  expect(await refused.exited).toBe(2)
  expect(await new Response(refused.stderr).text()).toContain('http.allowOpenBind')
})
