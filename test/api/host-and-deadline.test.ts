// Over a real socket: the Host allow-list (DNS rebinding) answered before auth, HTTP/1.0 requests without Host, odd
// request targets, and the request deadline that answers a slow handler with a 503 before Bun's idle timeout cuts it.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { createApiEnv, type ApiEnv } from './support.ts'
import { startApi } from '../../src/api/server.ts'
import { sha256 } from '../ui/support.ts'

let api: ApiEnv
let server: Awaited<ReturnType<typeof startApi>>
let slowServer: Awaited<ReturnType<typeof startApi>>
const ADMIN = 'admin-token-for-hosts'
beforeAll(async () => {
  api = await createApiEnv((c) => {
    c.http.port = 0 as number
    c.http.tokens = [{ name: 'ops', sha256: sha256(ADMIN), role: 'admin' }]
    c.http.allowedHosts = ['api.example.com', '.internal.example']
  })
  server = await startApi(api.rt)
  // Longer than Bun's default idle timeout (10 s), which used to cut such a response without any answer.
  const slowConfig = structuredClone(api.rt.config)
  slowConfig.http.requestTimeoutMs = 11_000
  slowServer = await startApi(
    { ...api.rt, config: slowConfig },
    {
      dlq: {
        list: async () => {
          await Bun.sleep(14_000)
          return { items: [], nextCursor: null }
        },
        redrive: async (f) => ({ redriven: 0, kept: 0, dryRun: f.dryRun === true, items: [] }),
      },
    },
  )
})
afterAll(async () => {
  await server?.stop()
  await slowServer?.stop()
  await api.cleanup()
})

/** One raw request on a fresh connection; the status code and body, or null status when the server cut it. */
async function raw(port: number, text: string, waitMs = 10_000): Promise<{ status: number | null; head: string; body: string }> {
  const chunks: Buffer[] = []
  // Complete once the head and Content-Length bytes of body are in (Bun may keep the connection open afterwards).
  const complete = () => {
    const all = Buffer.concat(chunks)
    const end = all.indexOf('\r\n\r\n')
    const length = /content-length: (\d+)/i.exec(all.subarray(0, Math.max(end, 0)).toString())?.[1]
    return end >= 0 && length !== undefined && all.length - end - 4 >= Number(length)
  }
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, waitMs)
    const done = () => (clearTimeout(timer), resolve())
    Bun.connect({
      hostname: '127.0.0.1',
      port,
      socket: {
        open: (s) => void s.write(text),
        data: (s, d) => {
          chunks.push(Buffer.from(d))
          if (complete()) (s.end(), done())
        },
        close: done,
        error: done,
      },
    })
  })
  const response = Buffer.concat(chunks).toString()
  const [head = '', body = ''] = response.split('\r\n\r\n')
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]
  return { status: status ? Number(status) : null, head, body }
}

const get = (path: string, headers: string[] = []) => raw(Number(server.url.port), [`GET ${path} HTTP/1.1`, ...headers, 'Connection: close', '', ''].join('\r\n'))
const auth = `Authorization: Bearer ${ADMIN}`

test('HTTP/1.0 without Host is served as the default host: public routes public, others behind auth', async () => {
  const port = Number(server.url.port)
  const health = await raw(port, 'GET /healthz HTTP/1.0\r\n\r\n')
  expect([health.status, JSON.parse(health.body)]).toEqual([200, { status: 'ok' }])
  expect((await raw(port, 'GET /customers HTTP/1.0\r\n\r\n')).status).toBe(401)
  expect((await raw(port, `GET /customers HTTP/1.0\r\n${auth}\r\n\r\n`)).status).toBe(200)
  // HTTP/1.1 requires Host (RFC 9112 §3.2): Bun refuses it itself.
  expect((await raw(port, 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n')).status).toBe(400)
})

test('a host name not on the allow-list is refused before auth, even with a valid admin token', async () => {
  const before = await api.counts()
  for (const host of ['rebind.attacker.test', 'rebind.attacker.test:8080', 'api.example.com.attacker.test', 'internal.example.evil', 'localhost.attacker.test']) {
    for (const headers of [[`Host: ${host}`], [`Host: ${host}`, auth]]) {
      const res = await get('/customers', headers)
      expect([host, res.status]).toEqual([host, 421])
      expect(res.head.toLowerCase()).toContain('content-type: application/problem+json')
    }
    expect([host, (await get('/healthz', [`Host: ${host}`])).status]).toEqual([host, 421])
    const dlq = await raw(Number(server.url.port), `POST /dlq/redrive HTTP/1.1\r\nHost: ${host}\r\n${auth}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`)
    expect([host, dlq.status]).toEqual([host, 421])
  }
  // An absolute-form target names the host too (Bun takes it over the Host header).
  expect((await get('http://rebind.attacker.test/customers', ['Host: localhost', auth])).status).toBe(421)
  expect(await api.counts()).toEqual(before)
})

test('listed names, subdomains of a dotted entry, loopback names and IP literals are served', async () => {
  for (const host of ['api.example.com', 'API.Example.COM:443', 'internal.example', 'a.b.internal.example', 'localhost', 'cdc.localhost', '127.0.0.1:8080', '10.1.2.3', '[::1]:8080']) {
    expect([host, (await get('/customers', [`Host: ${host}`])).status]).toEqual([host, 401])
    expect([host, (await get('/customers', [`Host: ${host}`, auth])).status]).toEqual([host, 200])
  }
})

test('a malformed Host is a 400 problem, never routed', async () => {
  for (const host of ['a/b@c', 'localhost:1, evil.test', 'exa mple.com', 'localhost:99999999', '-bad.example', 'localhost:80:80']) {
    const res = await get('/healthz', [`Host: ${host}`])
    expect([host, res.status]).toEqual([host, 400])
  }
  const twice = await get('/healthz', ['Host: localhost', 'Host: rebind.attacker.test'])
  expect(twice.status).toBe(400)
})

test('a handler slower than the deadline ends with a 503 problem, not a connection cut by the idle timeout', async () => {
  const res = await raw(Number(slowServer.url.port), `GET /dlq HTTP/1.1\r\nHost: localhost\r\n${auth}\r\nConnection: close\r\n\r\n`, 30_000)
  expect(res.status).toBe(503)
  expect(res.head.toLowerCase()).toContain('content-type: application/problem+json')
  expect(JSON.parse(res.body)).toMatchObject({ status: 503, type: 'https://cdc.dev/problems/timeout' })
}, 60_000)
