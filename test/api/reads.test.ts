// History reads that stay fast as the history grows: the read keys the consumer stores, the state route, the backfill
// of documents written without read keys, retention by age, and proof on the local FerretDB (PostgreSQL backend)
// that a history read is served by an index.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { connect } from '../../src/clients/postgres.ts'
import type { Doc, Store } from '../../src/clients/mongo.ts'
import { backfillHistory } from '../../src/consume/backfill.ts'
import { Gaps } from '../../src/consume/gaps.ts'
import { DAY_LISTS_COLLECTION, DAYS_COLLECTION, READ_KEYS, daysOf, ensureHistoryIndexes, historyDoc, recordDays } from '../../src/consume/history.ts'
import { pruneHistory } from '../../src/consume/retention.ts'
import { StateWriter, ensureStateIndexes, findKey, findKeys } from '../../src/consume/state.ts'
import { REDRIVEN_COLLECTION } from '../../src/consume/dlq.ts'
import { dlqPosition, recordRedriven, redrivenCount, redrivenPositions } from '../../src/redrive/ledger.ts'
import type { CdcEvent } from '../../src/events.ts'
import { createLogger } from '../../src/log.ts'
import { stackConfigEnv } from '../support/stack-env.ts'
import { createApiEnv, type ApiEnv } from './support.ts'

let api: ApiEnv
let store: Store

const DAY = 86_400_000

function event(id: string, version: number, at: number, actor = 'alice', overrides: Partial<CdcEvent> = {}): CdcEvent {
  const occurredAt = new Date(at).toISOString().replace('Z', '000Z')
  return {
    id: Bun.randomUUIDv7(),
    type: version === 1 ? 'CustomerCreated' : 'CustomerUpdated',
    op: version === 1 ? 'c' : 'u',
    aggregate: { type: 'customers', id },
    version,
    tx: { id: String(5000 + version), index: 0, size: 1 },
    occurredAt,
    actor: { id: actor, source: 'api' },
    reason: null,
    correlationId: null,
    causationId: null,
    changes: [{ path: 'name', before: version === 1 ? null : `v${version - 1}`, after: `v${version}` }],
    before: version === 1 ? null : { id, name: `v${version - 1}` },
    after: { id, name: `v${version}` },
    schema: 1,
    ...overrides,
  }
}

const at = (e: CdcEvent, offset: number) => ({ topic: 'cdc.customers', partition: 0, offset: String(offset), key: e.aggregate.id, value: null, headers: {}, timestamp: '0' })

/** As the consumer stores them (read keys, day buckets first). */
async function storeAsConsumer(table: string, events: CdcEvent[]) {
  await recordDays(store, table, events)
  await store.collection(`${table}_history`).insertMany(events.map((e, i) => historyDoc(e, at(e, i), e.occurredAt)))
}

/** As the code before the read keys stored them: the envelope, `_id`, storedAt and kafka only. */
function legacyDoc(e: CdcEvent, i: number): Doc {
  return { _id: e.id, ...e, storedAt: e.occurredAt, kafka: { topic: 'cdc.customers', partition: 0, offset: String(i) } }
}

beforeAll(async () => {
  api = await createApiEnv()
  store = await api.rt.mongo()
  await ensureHistoryIndexes(store, ['customers', 'products'])
  await ensureStateIndexes(store, ['customers'])
})
afterAll(() => api.cleanup())

describe('read keys', () => {
  test('stored on every history document, never served', async () => {
    const t0 = Date.UTC(2026, 2, 1, 9)
    await storeAsConsumer('customers', [event('k1', 1, t0), event('k1', 2, t0 + 1000, 'bob')])
    const [doc] = await store.collection('customers_history').find({ aggKey: 'k1', version: 2 })
    expect(doc).toMatchObject({ aggKey: 'k1', day: '2026-03-01', hour: '2026-03-01T09', actorDay: '2026-03-01 bob', txId: '5002' })
    const res = await api.call('GET', '/history/customers/k1')
    expect(res.body.items.map((i: { version: number }) => i.version)).toEqual([1, 2])
    for (const item of res.body.items) for (const k of [...READ_KEYS, '_id']) expect(item[k]).toBeUndefined()
    const audit = await api.call('GET', '/history?actor=bob&table=customers')
    expect(audit.body.items.map((i: { aggregate: { id: string } }) => i.aggregate.id)).toEqual(['k1'])
    for (const k of [...READ_KEYS, '_id']) expect(audit.body.items[0][k]).toBeUndefined()
    // The console's transaction page finds the event by its txId.
    const tx = await api.app.request('/ui/tx/5002')
    expect(tx.status).toBe(200)
    expect(await tx.text()).toContain('/ui/t/customers/k1')
  })

  test('audit search walks only the days that hold events, in both directions, with a cursor across days', async () => {
    const t0 = Date.UTC(2025, 5, 1, 12)
    // carol on days 0, 3, 10 (3 events each); dave on day 3 only.
    const events = [0, 3, 10].flatMap((d) => [0, 1, 2].map((k) => event(`w${d}`, k + 1, t0 + d * DAY + k * 60_000, 'carol')))
    const dave = event('w3', 4, t0 + 3 * DAY + 3 * 60_000, 'dave')
    await storeAsConsumer('customers', [...events, dave])
    expect(await daysOf(store, 'customers', 'carol')).toEqual(['2025-06-01', '2025-06-04', '2025-06-11'])
    const walk = async (query: string) => {
      const seen: string[] = []
      let cursor: string | null = null
      do {
        const res: { status: number; body: { items: CdcEvent[]; nextCursor: string | null } } = await api.call(
          'GET',
          `/history?${query}&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        )
        expect(res.status).toBe(200)
        seen.push(...res.body.items.map((i) => i.occurredAt))
        cursor = res.body.nextCursor
      } while (cursor)
      return seen
    }
    const carol = events.map((e) => e.occurredAt)
    expect(await walk('actor=carol')).toEqual(carol)
    expect(await walk('actor=carol&order=desc')).toEqual([...carol].reverse())
    expect(await walk('actor=carol&from=2025-06-02&to=2025-06-30')).toEqual(carol.slice(3, 9))
    expect(await walk('table=customers&from=2025-06-04&to=2025-06-04T23:59:59Z')).toEqual([...carol.slice(3, 6), dave.occurredAt])
  })
})

describe('day lists', () => {
  const listOf = async (table: string, actor: string | null) =>
    ((await store.collection(DAY_LISTS_COLLECTION).findOne({ _id: JSON.stringify([table, actor]) })) as { days: string[] } | null)?.days.toSorted()
  const register = (table: string, actor: string | null, day: string) =>
    store.collection(DAYS_COLLECTION).insertMany([{ _id: JSON.stringify([table, actor, day]), scope: JSON.stringify([table, actor]), table, day }])

  test('each scope lists its days in one document; registries without lists are read, then folded into the first list', async () => {
    const table = 'lists_a'
    await ensureHistoryIndexes(store, [table])
    // Registered by an older version: no list, read from the registry.
    await register(table, null, '2024-01-02')
    await register(table, 'ivy', '2024-01-02')
    expect(await listOf(table, 'ivy')).toBeUndefined()
    expect(await daysOf(store, table, 'ivy')).toEqual(['2024-01-02'])
    // A new day of that scope creates its list, with the registered days.
    await recordDays(store, table, [event('l1', 1, Date.UTC(2024, 0, 5, 8), 'ivy'), event('l1', 2, Date.UTC(2024, 0, 6, 8), 'jon')])
    expect(await listOf(table, 'ivy')).toEqual(['2024-01-02', '2024-01-05'])
    expect(await listOf(table, null)).toEqual(['2024-01-02', '2024-01-05', '2024-01-06'])
    expect(await listOf(table, 'jon')).toEqual(['2024-01-06'])
    expect(await daysOf(store, table, null)).toEqual(['2024-01-02', '2024-01-05', '2024-01-06'])
  })

  test('backfill lists every registered day (scopes with no list; days an older version registered only)', async () => {
    const table = 'lists_b'
    await ensureHistoryIndexes(store, [table])
    await recordDays(store, table, [event('l2', 1, Date.UTC(2024, 1, 1, 8), 'kim')])
    await register(table, 'kim', '2024-01-20')
    await register(table, 'lea', '2024-01-21')
    await register(table, null, '2024-01-21')
    const result = await backfillHistory(store, table)
    expect(result.dayLists).toBe(3)
    expect(await listOf(table, 'kim')).toEqual(['2024-01-20', '2024-02-01'])
    expect(await listOf(table, 'lea')).toEqual(['2024-01-21'])
    expect(await daysOf(store, table, null)).toEqual(['2024-01-21', '2024-02-01'])
    // Twice: nothing changes.
    await backfillHistory(store, table)
    expect(await listOf(table, 'kim')).toEqual(['2024-01-20', '2024-02-01'])
  })

  test('two writers creating one list at once both land', async () => {
    const table = 'lists_c'
    await ensureHistoryIndexes(store, [table])
    // Two processes (separate memos: two stores) record different days of one scope at the same moment.
    const other = await api.rt.mongo()
    const second = { collection: other.collection.bind(other), ping: () => other.ping(), close: async () => {} }
    await Promise.all([
      recordDays(store, table, [event('l3', 1, Date.UTC(2024, 2, 1, 8), 'max')]),
      recordDays(second, table, [event('l3', 2, Date.UTC(2024, 2, 2, 8), 'max')]),
    ])
    expect(await listOf(table, 'max')).toEqual(['2024-03-01', '2024-03-02'])
  })
})

describe('GET /state/:table/:id', () => {
  test('the latest row, version and deletion from the read model; 404s', async () => {
    const gaps = new Gaps(store)
    const writer = new StateWriter(store, gaps, createLogger({ test: 'reads' }, () => {}))
    const t0 = Date.UTC(2026, 3, 1)
    const s1 = [event('s1', 1, t0), event('s1', 2, t0 + 1000)]
    const s2 = [event('s2', 1, t0), event('s2', 2, t0 + 1000, 'alice', { type: 'CustomerDeleted', op: 'd', before: { id: 's2', name: 'v1' }, after: null })]
    await storeAsConsumer('customers', [...s1, ...s2])
    await writer.apply('customers', [...s1, ...s2], { topic: 'test', partition: 0 })
    const live = await api.call('GET', '/state/customers/s1')
    expect(live.status).toBe(200)
    expect(live.body).toEqual({ aggregate: { type: 'customers', id: 's1' }, version: 2, deleted: false, row: { id: 's1', name: 'v2' }, occurredAt: s1[1]!.occurredAt, eventId: s1[1]!.id })
    const gone = await api.call('GET', '/state/customers/s2')
    expect(gone.body).toMatchObject({ version: 2, deleted: true, row: { id: 's2', name: 'v1' } })
    expect((await api.call('GET', '/state/customers/nobody')).status).toBe(404)
    expect((await api.call('GET', '/state/not_tracked/1')).status).toBe(404)
    const spec = await api.call('GET', '/openapi.json')
    expect(spec.body.paths['/state/{table}/{id}'].get).toBeDefined()
  })
})

describe('console find by value', () => {
  test('one equality on the state\'s find keys: deleted rows; legacy states after backfill; long values refused', async () => {
    const writer = new StateWriter(store, new Gaps(store), createLogger({ test: 'reads' }, () => {}))
    const t0 = Date.UTC(2026, 3, 2)
    const f1 = [event('f1', 1, t0, 'alice', { after: { id: 'f1', name: 'Fay', email: 'fay@example.com', score: 7 } })]
    const f2 = [
      event('f2', 1, t0, 'alice', { after: { id: 'f2', name: 'Fay', email: 'gus@example.com', score: 8 } }),
      event('f2', 2, t0 + 1000, 'alice', { type: 'CustomerDeleted', op: 'd', before: { id: 'f2', name: 'Fay', email: 'gus@example.com', score: 8 }, after: null }),
    ]
    await storeAsConsumer('customers', [...f1, ...f2])
    await writer.apply('customers', [...f1, ...f2], { topic: 'test', partition: 0 })
    // A state as the code before the find keys wrote it.
    await store.collection('customers_state').insertMany([{ _id: 'f3', aggregate: { type: 'customers', id: 'f3' }, version: 1, deleted: false, row: { id: 'f3', name: 'Fay' }, occurredAt: f1[0]!.occurredAt, eventId: f1[0]!.id }])
    const find = async (field: string, value: string) => {
      const res = await api.app.request(`http://localhost/ui/find?field=${encodeURIComponent(field)}&value=${encodeURIComponent(value)}`)
      const html = await res.text()
      return { status: res.status, ids: [...html.matchAll(/href="\/ui\/t\/customers\/(f\d)"/g)].map((m) => m[1]) }
    }
    expect(await find('customers.name', 'Fay')).toEqual({ status: 200, ids: ['f1', 'f2'] })
    expect((await find('customers.email', 'gus@example.com')).ids).toEqual(['f2'])
    expect((await find('customers.name', 'fay')).ids).toEqual([])
    const { backfillState } = await import('../../src/consume/backfill.ts')
    expect((await backfillState(store, 'customers')).updated).toBeGreaterThanOrEqual(1)
    expect((await find('customers.name', 'Fay')).ids).toEqual(['f1', 'f2', 'f3'])
    expect((await backfillState(store, 'customers')).scanned).toBe(0)
    expect((await find('customers.name', 'x'.repeat(201))).status).toBe(400)
    expect(findKeys({ a: 'x', n: 7, b: false, z: null, o: { p: 1 }, l: 'y'.repeat(201) })).toEqual([findKey('a', 'x'), findKey('n', '7'), findKey('b', 'false')])
    // Stored, never served.
    expect(Object.keys((await api.call('GET', '/state/customers/f1')).body)).not.toContain('find')
  })
})

describe('backfill', () => {
  test('documents written without read keys become readable; a second run finds nothing', async () => {
    const t0 = Date.UTC(2026, 4, 1, 8)
    const old = Array.from({ length: 1200 }, (_, i) => event(`b${i % 40}`, Math.floor(i / 40) + 1, t0 + i * 60_000, i % 2 ? 'erin' : 'frank'))
    await store.collection('products_history').insertMany(old.map(legacyDoc))
    expect((await api.call('GET', '/history/products/b1')).body.items).toEqual([])
    const progress: number[] = []
    const result = await backfillHistory(store, 'products', (p) => progress.push(p.updated))
    expect(result).toMatchObject({ table: 'products', scanned: 1200, updated: 1200 })
    expect(progress.at(-1)).toBe(1200)
    const page = await api.call('GET', '/history/products/b1?limit=100')
    expect(page.body.items.map((i: { version: number }) => i.version)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1))
    expect(page.body.items[0]).toEqual(JSON.parse(JSON.stringify({ ...old[1]!, storedAt: old[1]!.occurredAt, kafka: { topic: 'cdc.customers', partition: 0, offset: '1' } })))
    const erin = await api.call('GET', '/history?table=products&actor=erin&limit=100')
    expect(erin.body.items.length).toBe(100)
    expect(erin.body.items.every((i: CdcEvent) => i.actor.id === 'erin')).toBe(true)
    expect(erin.body.nextCursor).not.toBeNull()
    expect((await api.call('GET', `/history/products/b7/at?ts=${old[47]!.occurredAt}`)).body).toMatchObject({ version: 2 })
    expect(await backfillHistory(store, 'products')).toMatchObject({ table: 'products', scanned: 0, updated: 0 })
  })
})

describe('retention', () => {
  test('prune-history removes whole old days (archived first), keeps the rest, and forgets their buckets', async () => {
    const now = Date.UTC(2026, 6, 20, 12)
    const table = 'orders'
    await ensureHistoryIndexes(store, [table])
    const e = (id: string, v: number, daysAgo: number, actor: string) => ({ ...event(id, v, now - daysAgo * DAY, actor), aggregate: { type: table, id } })
    const events = [e('r1', 1, 40, 'gina'), e('r1', 2, 31, 'gina'), e('r1', 3, 30, 'hank'), e('r1', 4, 2, 'gina'), e('r2', 1, 35, 'hank')]
    await storeAsConsumer(table, events)
    const dir = await mkdtemp(`${tmpdir()}/cdc-archive-`)
    try {
      const result = await pruneHistory(store, table, { olderThanDays: 30, now, archiveDir: dir })
      expect(result).toMatchObject({ table, keepFrom: '2026-06-20', deleted: 3, archived: 3 })
      expect(result.days).toEqual(['2026-06-10', '2026-06-15', '2026-06-19'])
      const remaining = await api.call('GET', '/history/orders/r1')
      expect(remaining.body.items.map((i: { version: number }) => i.version)).toEqual([3, 4])
      expect((await api.call('GET', '/history/orders/r2')).body.items).toEqual([])
      const files = (await readdir(`${dir}/orders`)).sort()
      expect(files).toEqual(['2026-06-10.jsonl', '2026-06-15.jsonl', '2026-06-19.jsonl'])
      const archived = JSON.parse((await readFile(`${dir}/orders/2026-06-10.jsonl`, 'utf8')).trim())
      expect(archived).toMatchObject({ id: events[0]!.id, version: 1, aggregate: { id: 'r1' } })
      expect(archived.aggKey).toBeUndefined()
      expect(await daysOf(store, table, null)).toEqual(['2026-06-20', '2026-07-18'])
      expect(await daysOf(store, table, 'hank')).toEqual(['2026-06-20'])
      const audit = await api.call('GET', '/history?table=orders&limit=100')
      expect(audit.body.items.map((i: { version: number }) => i.version)).toEqual([3, 4])
      // Nothing older left: a second run deletes nothing.
      expect(await pruneHistory(store, table, { olderThanDays: 30, now })).toMatchObject({ deleted: 0, days: [] })
      expect(await store.collection(DAYS_COLLECTION).findOne({ _id: JSON.stringify([table, 'gina', '2026-06-10']) })).toBeNull()
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('DLQ depth', () => {
  test('the redriven counter moves by new ledger entries only, and is made from an older ledger once', async () => {
    const entry = (n: number, dlqTopic = 'x.customers.dlq') => ({ position: dlqPosition(dlqTopic, 0, String(n)), dlqTopic, eventId: null })
    // An older ledger: entries recorded before counters existed.
    await store.collection(REDRIVEN_COLLECTION).insertMany([0, 1, 2].map((n) => ({ _id: entry(n).position, dlqTopic: 'x.customers.dlq', at: '2026-01-01T00:00:00Z', eventId: null })))
    expect(await redrivenCount(store, 'x.customers.dlq')).toBe(3)
    await recordRedriven(store, [entry(2), entry(3), entry(4), entry(0, 'x.orders.dlq')])
    await recordRedriven(store, [entry(4)])
    expect(await redrivenCount(store, 'x.customers.dlq')).toBe(5)
    expect(await redrivenCount(store, 'x.orders.dlq')).toBe(1)
    expect((await redrivenPositions(store, ['x.customers.dlq', 'x.orders.dlq'])).size).toBe(6)
  })
})

describe('FerretDB on PostgreSQL', () => {
  test('one aggregate\'s history page and an audit page are served by the GIN indexes of their read keys (without fast update)', async () => {
    const pgUrl = new URL(stackConfigEnv().CDC_POSTGRES_URL ?? api.config.postgres.url)
    pgUrl.pathname = '/ferretdb'
    const pg = connect({ url: pgUrl.toString(), max: 1 })
    try {
      const [meta] = await pg
        .query<{ t: string }>(`select _jsonb->>'table' as t from ${JSON.stringify(api.config.mongo.database)}._ferretdb_database_metadata where _jsonb->>'_id' = 'customers_history'`)
        .catch(() => [])
      if (!meta) return console.warn('not FerretDB on PostgreSQL: skipped')
      const ginOf = async (field: string) => {
        const [row] = await pg.query<{ name: string }>(
          `select i.indexrelid::regclass::text as name from pg_index i join pg_class c on c.oid = i.indexrelid join pg_am am on am.oid = c.relam
            where i.indrelid = $1::regclass and am.amname = 'gin' and pg_get_indexdef(i.indexrelid, 1, true) = format('(_jsonb -> %L::text)', $2::text)`,
          [`${JSON.stringify(api.config.mongo.database)}.${JSON.stringify(meta.t)}`, field],
        )
        return row?.name
      }
      const scans = async (index: string) =>
        Number((await pg.query<{ n: string }>('select idx_scan::text as n from pg_stat_user_indexes where indexrelid = $1::regclass', [index]))[0]!.n)
      const aggKey = await ginOf('aggKey')
      const actorDay = await ginOf('actorDay')
      expect(aggKey).toBeDefined()
      expect(actorDay).toBeDefined()
      // Without GIN's fast update: a pending list of recent inserts would be read whole by every lookup.
      const [opts] = await pg.query<{ o: string[] | null }>('select reloptions as o from pg_class where oid = $1::regclass', [aggKey!])
      expect(opts!.o).toContain('fastupdate=off')
      // Statistics reach pg_stat_user_indexes when the server's backend reports them (at most once a second).
      const before = [await scans(aggKey!), await scans(actorDay!)]
      expect((await api.call('GET', '/history/customers/k1')).status).toBe(200)
      expect((await api.call('GET', '/history?actor=carol&table=customers&limit=2')).status).toBe(200)
      const deadline = Date.now() + 20_000
      let after = before
      while (Date.now() < deadline) {
        await pg.query('select pg_stat_clear_snapshot()')
        after = [await scans(aggKey!), await scans(actorDay!)]
        if (after[0]! > before[0]! && after[1]! > before[1]!) break
        await Bun.sleep(500)
      }
      expect(after[0]!).toBeGreaterThan(before[0]!)
      expect(after[1]!).toBeGreaterThan(before[1]!)
      // And the plan PostgreSQL picks for FerretDB's pushed-down filter is an index scan, not a sequential one.
      const plan = await pg.query<{ 'QUERY PLAN': string }>(
        `explain select _jsonb from ${JSON.stringify(api.config.mongo.database)}.${JSON.stringify(meta.t)} where _jsonb -> 'aggKey' @> '"k1"'`,
      )
      expect(plan.map((r) => r['QUERY PLAN']).join('\n')).toContain(aggKey!.split('.').pop()!.replaceAll('"', ''))
      // The console's find by value: a GIN index on the states' find keys serves its pushed-down equality.
      const [state] = await pg.query<{ t: string }>(
        `select _jsonb->>'table' as t from ${JSON.stringify(api.config.mongo.database)}._ferretdb_database_metadata where _jsonb->>'_id' = 'customers_state'`,
      )
      const statePlan = await pg.query<{ 'QUERY PLAN': string }>(
        `explain select _jsonb from ${JSON.stringify(api.config.mongo.database)}.${JSON.stringify(state!.t)} where _jsonb -> 'find' @> '"[\\"name\\",\\"Fay\\"]"'`,
      )
      expect(statePlan.map((r) => r['QUERY PLAN']).join('\n')).toMatch(/Bitmap Index Scan on \S+_expr_idx\d*/)
    } finally {
      await pg.end()
    }
  })
})
