// Bearer tokens and roles: 401 without a valid token, 403 for a role too small; the principal becomes the actor;
// tokens never reach the logs.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { createApiEnv, type ApiEnv } from './support.ts'
import { createLogger } from '../../src/log.ts'

const TOKENS = { reader: 'r-secret-token-1', writer: 'w-secret-token-2', admin: 'a-secret-token-3' }
const sha = (t: string) => createHash('sha256').update(t).digest('hex')

let api: ApiEnv
const logLines: string[] = []
let customerId: number
beforeAll(async () => {
  api = await createApiEnv((c) => {
    c.http.tokens = [
      { name: 'reader', sha256: sha(TOKENS.reader), role: 'read' },
      { name: 'writer', sha256: sha(TOKENS.writer), role: 'write' },
      { name: 'admin', sha256: sha(TOKENS.admin), role: 'admin' },
    ]
  }, { log: createLogger({}, (l) => logLines.push(l)) })
  customerId = (await api.call('POST', '/customers', { body: { name: 'A', email: 'a@example.com' }, token: TOKENS.writer })).body.id
})
afterAll(() => api.cleanup())

type Who = keyof typeof TOKENS | 'none' | 'wrong'
const token = (who: Who) => (who === 'none' ? undefined : who === 'wrong' ? 'not-a-token' : TOKENS[who])

const requests: { name: string; method: string; path: () => string; body?: () => unknown; role: 'read' | 'write' | 'admin' }[] = [
  { name: 'list', method: 'GET', path: () => '/customers', role: 'read' },
  { name: 'read', method: 'GET', path: () => `/customers/${customerId}`, role: 'read' },
  { name: 'history', method: 'GET', path: () => `/history/customers/${customerId}`, role: 'read' },
  { name: 'metrics', method: 'GET', path: () => '/metrics', role: 'read' },
  { name: 'create', method: 'POST', path: () => '/customers', body: () => ({ name: 'N', email: `n${Math.random()}@example.com` }), role: 'write' },
  { name: 'patch', method: 'PATCH', path: () => `/customers/${customerId}`, body: () => ({ phone: '123' }), role: 'write' },
  { name: 'dlq list', method: 'GET', path: () => '/dlq', role: 'admin' },
  { name: 'redrive', method: 'POST', path: () => '/dlq/redrive', body: () => ({ dryRun: true }), role: 'admin' },
  { name: 'discard', method: 'POST', path: () => '/dlq/discard', body: () => ({ topic: 'cdc.customers.dlq', partition: 0, offset: '0', reason: 'r' }), role: 'admin' },
]
const RANK = { none: 0, wrong: 0, reader: 1, writer: 2, admin: 3 } as const
const NEEDED = { read: 1, write: 2, admin: 3 } as const

for (const r of requests) {
  for (const who of ['none', 'wrong', 'reader', 'writer', 'admin'] as const) {
    const expected = RANK[who] === 0 ? 401 : RANK[who] < NEEDED[r.role] ? 403 : 'ok'
    test(`${r.name} as ${who} → ${expected}`, async () => {
      const before = await api.counts()
      const res = await api.call(r.method, r.path(), { body: r.body?.(), token: token(who) })
      if (expected === 'ok') {
        expect(res.status).toBeLessThan(300)
        return
      }
      expect(res.status).toBe(expected)
      expect(res.headers.get('content-type')).toBe('application/problem+json')
      if (expected === 401) expect(res.headers.get('www-authenticate')).toBe('Bearer')
      expect(await api.counts()).toEqual(before)
    })
  }
}

test('health, readiness probes and the API description need no token', async () => {
  expect((await api.call('GET', '/healthz')).status).toBe(200)
  expect((await api.call('GET', '/openapi.json')).status).toBe(200)
})

test('malformed Authorization headers are 401', async () => {
  for (const header of ['Basic YWxhZGRpbjpvcGVu', 'Bearer', `bearer ${TOKENS.admin}`, `Bearer ${TOKENS.admin} x`, `Bearer ${TOKENS.admin}\u00e9`]) {
    const res = await api.app.request('/customers', { headers: { authorization: header } })
    expect([header, res.status]).toEqual([header, 401])
  }
})

test('the token name is the actor, whatever X-Actor claims', async () => {
  await api.call('PATCH', `/customers/${customerId}`, { body: { name: 'Renamed' }, token: TOKENS.writer, headers: { 'x-actor': 'mallory' } })
  const [row] = await api.rt.db().query<{ payload: any }>('select payload from cdc.event_store order by occurred_at desc limit 1')
  expect(row!.payload.actor).toEqual({ id: 'writer', source: 'api' })
})

test('access log: one line per request with request id, route, status and ms; tokens never logged', async () => {
  logLines.length = 0
  await api.call('GET', `/customers/${customerId}`, { token: TOKENS.reader, headers: { 'x-request-id': 'trace-77' } })
  await api.call('GET', '/customers', { token: 'wrong-token-value-zzz' })
  const access = logLines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'http request')
  expect(access[0]).toMatchObject({ requestId: 'trace-77', route: '/customers/:id', status: 200, principal: 'reader', ms: expect.any(Number) })
  expect(access[1]).toMatchObject({ status: 401 })
  const all = logLines.join('\n')
  for (const secret of [...Object.values(TOKENS), 'wrong-token-value-zzz']) expect(all).not.toContain(secret)
})
