// Application events through the whole pipeline (trigger/cdc.emit → outbox → relay → Kafka → consumer → MongoDB →
// API): a rolled-back emit never appears; a committed one sits between its transaction's row changes in version
// order. POST /events does the same over HTTP with who/why from the request; bad input is a 4xx and writes nothing.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createApiEnv, type ApiEnv } from '../api/support.ts'
import { eventually } from '../support/env.ts'
import { startRelay } from '../../src/relay/index.ts'
import { startConsumer } from '../../src/consume/index.ts'
import type { Role } from '../../src/runtime.ts'

let api: ApiEnv
const roles: Role[] = []
beforeAll(async () => {
  api = await createApiEnv((c) => {
    c.http.maxEventPayloadBytes = 1024
  })
  roles.push(await startRelay(api.rt))
  roles.push(await startConsumer(api.rt))
})
afterAll(async () => {
  for (const role of roles.reverse()) await role.stop().catch(() => {})
  await api.cleanup()
})

const historyOf = async (id: string, count: number) =>
  eventually(async () => {
    const res = await api.call('GET', `/customers/${id}/history`)
    return res.status === 200 && res.body.items.length >= count ? (res.body.items as any[]) : undefined
  }, 30_000)

async function newCustomer(email: string): Promise<string> {
  const res = await api.call('POST', '/customers', { body: { name: 'Eve', email }, headers: { 'x-actor': 'alice' } })
  expect(res.status).toBe(201)
  return String(res.body.id)
}

describe('cdc.emit through the pipeline', () => {
  test('rolled back → never in the history; committed → between its row changes, in version order', async () => {
    const id = await newCustomer('eve@example.com')
    const db = api.rt.db()
    await db
      .begin(async (tx) => {
        await tx.query(`update customers set phone = '0' where id = $1`, [id])
        await tx.query(`select cdc.emit('customers', $1, 'CustomerCalled', '{"outcome":"never"}')`, [id])
        throw new Error('roll back')
      })
      .catch(() => {})
    await db.begin(async (tx) => {
      await tx.query(`select set_config('cdc.actor', 'agent7', true), set_config('cdc.reason', 'support call', true)`)
      await tx.query(`update customers set phone = '1' where id = $1`, [id])
      await tx.query(`select cdc.emit('customers', $1, 'CustomerCalled', $2::text::jsonb)`, [id, JSON.stringify({ minutes: 4 })])
      await tx.query(`update customers set address = 'Dock 3' where id = $1`, [id])
    })
    const items = await historyOf(id, 4)
    expect(items.map((e) => [e.version, e.type, e.op, e.tx.index])).toEqual([
      [1, 'CustomerCreated', 'c', 0],
      [2, 'CustomerUpdated', 'u', 0],
      [3, 'CustomerCalled', 'm', 1],
      [4, 'CustomerAddressChanged', 'u', 2],
    ])
    expect(items[2]).toMatchObject({ data: { minutes: 4 }, before: null, after: null, changes: [], actor: { id: 'agent7', source: 'sql' }, reason: 'support call' })
    expect(new Set(items.slice(1).map((e) => e.tx.id)).size).toBe(1)
    expect(items.some((e) => e.data?.outcome === 'never')).toBe(false)
    // The read model keeps the row: an application event carries no image.
    const store = await api.rt.mongo()
    const state = await eventually(async () => {
      const s = await store.collection('customers_state').findOne({ _id: id })
      return s?.version === 4 && s
    })
    expect(state).toMatchObject({ deleted: false, row: { address: 'Dock 3', phone: '1' } })
  }, 60_000)

  test('POST /events: 201 with id and version; who/why from the request; the outcome says stored', async () => {
    const id = await newCustomer('frank@example.com')
    const res = await api.call('POST', '/events', {
      body: { type: 'CustomerContacted', aggregate: { type: 'customers', id }, data: { channel: 'mail', tags: ['vip'] } },
      headers: { 'x-actor': 'bob', 'x-reason': 'renewal reminder', 'x-request-id': 'req-ev-1' },
    })
    expect(res.status).toBe(201)
    expect(res.body).toEqual({ id: expect.any(String), aggregate: { type: 'customers', id }, version: 2, type: 'CustomerContacted' })
    expect(res.headers.get('location')).toBe(`/events/${res.body.id}/outcome`)
    const items = await historyOf(id, 2)
    expect(items[1]).toMatchObject({
      id: res.body.id,
      op: 'm',
      version: 2,
      data: { channel: 'mail', tags: ['vip'] },
      actor: { id: 'bob', source: 'api' },
      reason: 'renewal reminder',
      correlationId: 'req-ev-1',
    })
    const outcome = await api.call('GET', `/events/${res.body.id}/outcome`)
    expect(outcome.status).toBe(200)
    expect(outcome.body).toEqual({
      eventId: res.body.id,
      outcomes: [{ outcome: 'stored', at: items[1].storedAt, topic: items[1].kafka.topic, partition: items[1].kafka.partition, offset: String(items[1].kafka.offset) }],
    })
    // The next row change continues the same version sequence.
    expect((await api.call('PATCH', `/customers/${id}`, { body: { phone: '+1 555' } })).status).toBe(200)
    expect((await historyOf(id, 3))[2]).toMatchObject({ version: 3, op: 'u' })
  }, 60_000)
})

describe('POST /events refuses bad input and writes nothing', () => {
  let id: string
  beforeAll(async () => {
    id = await newCustomer('gina@example.com')
  })
  const post = (body: unknown, headers: Record<string, string> = {}) => api.call('POST', '/events', { body, headers })
  const ok = () => ({ type: 'CustomerContacted', aggregate: { type: 'customers', id }, data: {} })

  const cases: [string, () => unknown, number, string][] = [
    ['type not PascalCase', () => ({ ...ok(), type: 'customer_contacted' }), 400, 'type'],
    ['type with a dot', () => ({ ...ok(), type: 'Customer.Contacted' }), 400, 'type'],
    ['unknown top-level field', () => ({ ...ok(), version: 7 }), 400, 'version'],
    ['unknown aggregate field', () => ({ ...ok(), aggregate: { type: 'customers', id, version: 1 } }), 400, 'aggregate.version'],
    ['aggregate type not an identifier', () => ({ ...ok(), aggregate: { type: 'Customers', id } }), 400, 'aggregate.type'],
    ['aggregate type not consumed', () => ({ ...ok(), aggregate: { type: 'tickets', id: 'T-1' } }), 400, 'aggregate.type'],
    ['empty aggregate id', () => ({ ...ok(), aggregate: { type: 'customers', id: '' } }), 400, 'aggregate.id'],
    ['data not an object', () => ({ ...ok(), data: [1, 2] }), 400, 'data'],
    ['a field name MongoDB cannot store', () => ({ ...ok(), data: { 'a.b': 1 } }), 400, 'data'],
    ['a $ field name', () => ({ ...ok(), data: { nested: { $set: 1 } } }), 400, 'data'],
    ['an array inside an array', () => ({ ...ok(), data: { m: [[1]] } }), 400, 'data'],
    ['a NUL character', () => ({ ...ok(), data: { s: 'a\u0000b' } }), 400, 'data'],
    ['payload over http.maxEventPayloadBytes', () => ({ ...ok(), data: { text: 'x'.repeat(2000) } }), 413, 'data'],
  ]
  for (const [name, body, status, path] of cases) {
    test(name, async () => {
      const before = await api.counts()
      const res = await post(body())
      expect(res.status).toBe(status)
      expect(res.headers.get('content-type')).toContain('application/problem+json')
      expect(res.body.errors.map((e: any) => e.path)).toContain(path)
      expect(await api.counts()).toEqual(before)
    })
  }

  test('an aggregate of a tracked table that never existed → 404; not JSON → 415', async () => {
    const before = await api.counts()
    const missing = await post({ ...ok(), aggregate: { type: 'customers', id: '999999' } })
    expect(missing.status).toBe(404)
    const raw = await api.call('POST', '/events', { raw: 'type=X', headers: { 'content-type': 'text/plain' } })
    expect(raw.status).toBe(415)
    expect(await api.counts()).toEqual(before)
  })

  test('GET /events/:id/outcome of an unknown event → 404 problem', async () => {
    const res = await api.call('GET', `/events/${crypto.randomUUID()}/outcome`)
    expect(res.status).toBe(404)
    expect(res.body.type).toContain('not-found')
  })
})
