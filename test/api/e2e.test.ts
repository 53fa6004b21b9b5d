// The whole pipeline behind the API, in-process: API writes → capture trigger → relay → Kafka → consumer → MongoDB →
// API history reads. Three commands by two people become four atomic events with the right who, why and what; `at`
// returns each intermediate state. A poison message shows up in GET /dlq and can be redriven (dry run).
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { createApiEnv, type ApiEnv } from './support.ts'
import { eventually } from '../support/env.ts'
import { startRelay } from '../../src/relay/index.ts'
import { startConsumer } from '../../src/consume/index.ts'
import { dlqAdmin } from '../../src/api/server.ts'
import { topicFor } from '../../src/topics.ts'
import type { Role } from '../../src/runtime.ts'

let api: ApiEnv
const roles: Role[] = []
beforeAll(async () => {
  api = await createApiEnv(() => {}, {
    dlq: { list: (f) => dlqAdmin(api.rt).list(f), redrive: (f) => dlqAdmin(api.rt).redrive(f), discard: (r) => dlqAdmin(api.rt).discard(r) },
  })
  roles.push(await startRelay(api.rt))
  roles.push(await startConsumer(api.rt))
})
afterAll(async () => {
  for (const role of roles.reverse()) await role.stop().catch(() => {})
  await api.cleanup()
})

test('create as alice, rename and move as bob, delete: four atomic events, each state readable with `at`', async () => {
  const created = await api.call('POST', '/customers', {
    body: { name: 'Ann', email: 'ann@example.com', address: 'Old Road 1' },
    headers: { 'x-actor': 'alice', 'x-reason': 'signup form', 'x-request-id': 'req-create' },
  })
  expect(created.status).toBe(201)
  const id = created.body.id
  const patched = await api.call('PATCH', `/customers/${id}`, {
    body: { name: 'Ann Smith', address: 'New Street 2' },
    headers: { 'x-actor': 'bob', 'x-reason': 'married and moved' },
  })
  expect(patched.status).toBe(200)
  expect((await api.call('DELETE', `/customers/${id}`, { headers: { 'x-actor': 'alice', 'x-reason': 'gdpr request 12' } })).status).toBe(204)

  const history = await eventually(async () => {
    const res = await api.call('GET', `/customers/${id}/history`)
    return res.status === 200 && res.body.items.length >= 4 ? res.body : undefined
  }, 30_000)
  const items = history.items
  expect(items.map((e: any) => [e.version, e.type, e.actor.id, e.reason])).toEqual([
    [1, 'CustomerCreated', 'alice', 'signup form'],
    [2, 'CustomerNameChanged', 'bob', 'married and moved'],
    [3, 'CustomerAddressChanged', 'bob', 'married and moved'],
    [4, 'CustomerDeleted', 'alice', 'gdpr request 12'],
  ])
  expect(items[0].correlationId).toBe('req-create')
  // updated_at is a bookkeeping column (the demo's capture settings): in the images, never in changes.
  expect(items[1].changes).toEqual([{ path: 'name', before: 'Ann', after: 'Ann Smith' }])
  expect(items[2].changes).toEqual([{ path: 'address', before: 'Old Road 1', after: 'New Street 2' }])
  expect(items[1].tx.id).toBe(items[2].tx.id)
  for (const item of items) {
    expect(item._id).toBeUndefined()
    expect(item).toMatchObject({ actor: { source: 'api' }, storedAt: expect.any(String), kafka: { topic: topicFor(api.config, 'customers', item.type) } })
  }

  const at = async (ts: string) => api.call('GET', `/history/customers/${id}/at?ts=${encodeURIComponent(ts)}`)
  const before = new Date(Date.parse(items[0].occurredAt) - 1000).toISOString()
  expect((await at(before)).status).toBe(404)
  const v1 = (await at(items[0].occurredAt)).body
  expect(v1).toMatchObject({ version: 1, deleted: false, row: { name: 'Ann', address: 'Old Road 1' } })
  // Events of one command share a transaction; if they share the instant, `at` answers the command's end state.
  const v2 = (await at(items[1].occurredAt)).body
  expect(v2.version).toBe(items[1].occurredAt === items[2].occurredAt ? 3 : 2)
  expect(v2.row.name).toBe('Ann Smith')
  const v3 = (await at(items[2].occurredAt)).body
  expect(v3).toMatchObject({ version: 3, deleted: false, row: { name: 'Ann Smith', address: 'New Street 2' } })
  const v4 = (await at(items[3].occurredAt)).body
  expect(v4).toMatchObject({ version: 4, deleted: true, row: { name: 'Ann Smith', address: 'New Street 2' } })

  const audit = await api.call('GET', `/history?actor=bob&table=customers`)
  expect(audit.body.items.map((e: any) => e.version)).toEqual([2, 3])
})

test('a poison message appears in GET /dlq and POST /dlq/redrive reports it (dry run)', async () => {
  const topic = topicFor(api.config, 'customers', 'CustomerCreated')
  const producer = await api.rt.kafka().producer()
  try {
    await producer.send([{ topic, key: 'poison-1', value: '{"this is": not json' }])
  } finally {
    await producer.disconnect()
  }
  const page = await eventually(async () => {
    const res = await api.call('GET', '/dlq?aggregate=poison-1')
    return res.status === 200 && res.body.items.length > 0 ? res.body : undefined
  }, 30_000)
  expect(page.items[0]).toMatchObject({ key: 'poison-1', origin: { topic }, error: expect.any(String), redriveCount: 0 })
  const dry = await api.call('POST', '/dlq/redrive', { body: { aggregate: 'poison-1', dryRun: true } })
  expect(dry.status).toBe(200)
  expect(dry.body).toMatchObject({ dryRun: true })
  expect(dry.body.items.map((i: any) => i.key)).toContain('poison-1')
  expect((await api.call('GET', '/dlq?cursor=bm90LW91cnM')).status).toBe(400)
})
