// History reads over MongoDB. The documents are written here in the consumer's format (see src/consume/history.ts),
// so these tests pin the API's queries; test/api/e2e.test.ts runs the real pipeline.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { createApiEnv, type ApiEnv } from './support.ts'
import { readKeys, recordDays } from '../../src/consume/history.ts'

let api: ApiEnv
let seq = 0

function event(table: string, id: string, version: number, at: string, fields: Record<string, unknown>) {
  const eventId = `0190${String(++seq).padStart(4, '0')}-0000-7000-8000-000000000000`
  return {
    _id: eventId,
    id: eventId,
    type: 'CustomerUpdated',
    op: 'u',
    aggregate: { type: table, id },
    version,
    tx: { id: String(1000 + seq), index: 0 },
    occurredAt: at,
    actor: { id: 'alice', source: 'api' },
    reason: null,
    correlationId: null,
    causationId: null,
    changes: [],
    before: null,
    after: null,
    schema: 1,
    storedAt: at,
    kafka: { topic: `cdc.${table}`, partition: 0, offset: String(seq) },
    ...fields,
  }
}

const c1 = { id: 1, name: 'Ann', address: null }
const c2 = { id: 1, name: 'Anne', address: null }
const c3 = { id: 1, name: 'Anne', address: 'Main St' }

beforeAll(async () => {
  api = await createApiEnv()
  const store = await api.rt.mongo()
  // As the consumer stores them: with the read keys, and their day buckets recorded first.
  const write = async (table: string, docs: ReturnType<typeof event>[]) => {
    await recordDays(store, table, docs)
    await store.collection(`${table}_history`).insertMany(docs.map((d) => ({ ...d, ...readKeys(d) })))
  }
  await write('customers', [
    event('customers', '1', 1, '2026-01-01T10:00:00.000001Z', { type: 'CustomerCreated', op: 'c', after: c1, reason: 'signup' }),
    event('customers', '1', 2, '2026-01-02T10:00:00.000000Z', {
      type: 'CustomerNameChanged', actor: { id: 'bob', source: 'api' }, changes: [{ path: 'name', before: 'Ann', after: 'Anne' }], before: c1, after: c2,
    }),
    event('customers', '1', 3, '2026-01-02T10:00:00.000000Z', {
      type: 'CustomerAddressChanged', actor: { id: 'bob', source: 'api' }, changes: [{ path: 'address', before: null, after: 'Main St' }], before: c2, after: c3,
    }),
    event('customers', '1', 4, '2026-01-03T10:00:00.500000Z', { type: 'CustomerDeleted', op: 'd', before: c3, reason: 'gdpr' }),
    event('customers', '2', 1, '2026-01-01T12:00:00.000000Z', { type: 'CustomerCreated', op: 'c', after: { id: 2 }, actor: { id: 'bob', source: 'sql' } }),
  ])
  await write('products', [
    event('products', '7', 1, '2026-01-01T11:00:00.000000Z', { type: 'ProductCreated', op: 'c', after: { id: 7 } }),
  ])
})
afterAll(() => api.cleanup())

const versions = (body: { items: { version: number }[] }) => body.items.map((i) => i.version)

test('the history of one aggregate, oldest first, as envelope + storedAt + kafka without _id', async () => {
  const res = await api.call('GET', '/history/customers/1')
  expect(res.status).toBe(200)
  expect(versions(res.body)).toEqual([1, 2, 3, 4])
  expect(res.body.nextCursor).toBeNull()
  const first = res.body.items[0]
  expect(first._id).toBeUndefined()
  expect(first).toMatchObject({ id: expect.any(String), type: 'CustomerCreated', reason: 'signup', storedAt: expect.any(String), kafka: { topic: 'cdc.customers', partition: 0 } })
  expect(versions((await api.call('GET', '/history/customers/1?order=desc')).body)).toEqual([4, 3, 2, 1])
})

test('the /customers/:id/history alias answers the same', async () => {
  const a = await api.call('GET', '/history/customers/1?actor=bob')
  const b = await api.call('GET', '/customers/1/history?actor=bob')
  expect(b.status).toBe(200)
  expect(b.body).toEqual(a.body)
})

test('filters: time range, type, actor, field', async () => {
  const q = async (query: string) => versions((await api.call('GET', `/history/customers/1?${query}`)).body)
  expect(await q('from=2026-01-02&to=2026-01-02T23:59:59Z')).toEqual([2, 3])
  expect(await q('from=2026-01-01T10:00:00.000002Z')).toEqual([2, 3, 4])
  expect(await q('to=2026-01-01T11:00:01%2B01:00')).toEqual([1])
  expect(await q('type=CustomerDeleted')).toEqual([4])
  expect(await q('actor=bob')).toEqual([2, 3])
  expect(await q('field=address')).toEqual([3])
  expect(await q('actor=nobody')).toEqual([])
})

test('cursor pagination in both directions', async () => {
  for (const [order, expected] of [['asc', [1, 2, 3, 4]], ['desc', [4, 3, 2, 1]]] as const) {
    const seen: number[] = []
    let cursor: string | null = null
    do {
      const res: any = await api.call('GET', `/history/customers/1?limit=3&order=${order}${cursor ? `&cursor=${cursor}` : ''}`)
      seen.push(...versions(res.body))
      cursor = res.body.nextCursor
    } while (cursor)
    expect(seen).toEqual([...expected])
  }
})

test('at: the row as it was at each instant; 404 before it existed; the last image, deleted, after deletion', async () => {
  const at = (ts: string) => api.call('GET', `/history/customers/1/at?ts=${encodeURIComponent(ts)}`)
  const before = await at('2026-01-01T10:00:00.000000Z')
  expect(before.status).toBe(404)
  expect(before.headers.get('content-type')).toBe('application/problem+json')
  expect((await at('2026-01-01T10:00:00.000001Z')).body).toEqual({ aggregate: { type: 'customers', id: '1' }, version: 1, deleted: false, row: c1 })
  expect((await at('2026-01-02T09:59:59Z')).body.row).toEqual(c1)
  expect((await at('2026-01-02T10:00:00Z')).body).toMatchObject({ version: 3, deleted: false, row: c3 })
  expect((await at('2026-01-03T10:00:00.499999Z')).body.version).toBe(3)
  expect((await at('2026-01-03T10:00:00.5Z')).body).toEqual({ aggregate: { type: 'customers', id: '1' }, version: 4, deleted: true, row: c3 })
  expect((await at('2030-01-01T00:00:00+02:00')).body.deleted).toBe(true)
})

test('audit search across tables, by actor and time, with cursor pagination', async () => {
  const all = await api.call('GET', '/history?limit=100')
  expect(all.status).toBe(200)
  const times = all.body.items.map((i: { occurredAt: string }) => i.occurredAt)
  expect(times).toEqual([...times].sort())
  expect(all.body.items.length).toBe(6)
  const bob = await api.call('GET', '/history?actor=bob')
  expect(bob.body.items.map((i: any) => `${i.aggregate.type}/${i.aggregate.id}/${i.version}`)).toEqual(['customers/2/1', 'customers/1/2', 'customers/1/3'])
  const products = await api.call('GET', '/history?table=products&from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z')
  expect(products.body.items.map((i: any) => i.aggregate.id)).toEqual(['7'])
  const seen: string[] = []
  let cursor: string | null = null
  do {
    const res: any = await api.call('GET', `/history?order=desc&limit=2${cursor ? `&cursor=${cursor}` : ''}`)
    seen.push(...res.body.items.map((i: { id: string }) => i.id))
    cursor = res.body.nextCursor
  } while (cursor)
  expect(seen).toEqual(all.body.items.map((i: { id: string }) => i.id).reverse())
})

test('only tracked tables; bad filters are 400s', async () => {
  expect((await api.call('GET', '/history/pg_authid/1')).status).toBe(404)
  expect((await api.call('GET', '/history/cdc.outbox/1')).status).toBe(404)
  expect((await api.call('GET', '/history/secrets/1/at?ts=2026-01-01')).status).toBe(404)
  expect((await api.call('GET', '/history?table=users')).status).toBe(400)
  const bad = ['from=yesterday', 'to=2026-13-45T00:00:00Z', 'from=2026-02-30', 'order=sideways', 'type=drop%20table', 'field=a.b', 'cursor=xyz', 'actor=']
  for (const q of bad) {
    const res = await api.call('GET', `/history/customers/1?${q}`)
    expect([q, res.status]).toEqual([q, 400])
  }
  expect((await api.call('GET', '/history/customers/1/at')).status).toBe(400)
  expect((await api.call('GET', '/history/customers/1/at?ts=%7B%22%24gt%22%3A%22%22%7D')).status).toBe(400)
})
