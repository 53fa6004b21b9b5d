// The same capture scenarios in every capture mode give the same envelopes, field by field (event ids, occurredAt and
// the transaction id aside): rules and atomic events, bookkeeping and incidental columns, masks and excludes, root
// documents carried by the root's own events (lookups frozen as each child row was written) and as a separate
// document event, delete rules with a reason, cdc.emit, who/why (also changed inside a transaction), rolled-back
// savepoints, no-op updates, TOASTed values, deletes, natural and composite keys that change, REPLICA IDENTITY FULL.
// A relay runs in-process in every mode (logical mode's writes the event store from the WAL); what it published
// carries tx.size, the number of stored events of the event's transaction.
import { afterAll, expect, test } from 'bun:test'
import { track } from '../../src/capture/track.ts'
import type { Config } from '../../src/config.ts'
import type { CdcEvent } from '../../src/events.ts'
import { startRelay } from '../../src/relay/index.ts'
import { topicFor } from '../../src/topics.ts'
import type { Role, Runtime } from '../../src/runtime.ts'
import { cleanupEnv, readUntil } from '../relay/support.ts'
import { eventually, type TestEnv } from '../support/env.ts'
import { migratedEnv, storedEvents, withSettings } from './support.ts'

const MODES = ['outbox', 'emit', 'logical'] as const
type Mode = (typeof MODES)[number]

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const c of cleanups.reverse()) await c()
})

function configure(mode: Mode) {
  return (c: Config) => {
    c.capture.mode = mode
    c.capture.tables.customers = { incidental: [], bookkeeping: c.capture.tables.customers?.bookkeeping ?? [], mask: ['phone'], exclude: [] }
    c.capture.tables.products = { exclude: ['category'], mask: [], incidental: [], bookkeeping: [] }
    c.capture.tables.stock = { exclude: [], mask: [], incidental: ['note'], bookkeeping: [] }
  }
}

/** One run of every scenario; returns nothing: the event store is what is compared. */
async function scenarios(rt: Runtime) {
  const db = rt.db()
  // natural and composite keys whose values change (the WAL then carries the old key), and REPLICA IDENTITY FULL
  await db.query(`create table public.tags (code text primary key, label text not null)`)
  await db.query(`create table public.stock (site text, sku int, qty int not null, note text, primary key (site, sku))`)
  await db.query(`alter table public.stock replica identity full`)
  await track(rt, 'tags')
  await track(rt, 'stock')
  await db.query(`insert into tags values ('a:1', 'first'), ('b%2', 'second')`)
  await db.query(`update tags set code = 'a:one' where code = 'a:1'`)
  await db.query(`update tags set label = 'renamed' where code = 'a:one'`)
  await db.query(`insert into stock values ('x:y', 1, 5, null), ('z', 2, 1, 'n')`)
  await db.query(`update stock set sku = 3, qty = 6, note = 'moved' where site = 'x:y'`)
  await db.query(`update stock set note = 'incidental only' where site = 'x:y'`)
  await db.query(`delete from stock where site = 'z'`)
  await db.query(`delete from tags where code = 'a:one'`)
  const ctx = { actor: 'alice', reason: 'onboarding', correlation_id: 'req-1', causation_id: 'cmd-1' }
  const ids = await withSettings(db, ctx, async (tx) => {
    const [c] = await tx.query<{ id: number }>(
      `insert into customers (name, email, address, phone, created_at, updated_at)
       values ('Ann', 'ann@x', 'Old street 1', '555', '2026-01-01Z', '2026-01-01Z') returning id`,
    )
    const [p] = await tx.query<{ id: number }>(`insert into products (category, name, price) values ('tools', 'Hammer', 9.50) returning id`)
    return { customer: c!.id, product: p!.id }
  })
  // rules split one UPDATE into atomic events; updated_at rides along; the masked phone shows as "***"
  await withSettings(db, { actor: 'bob' }, (tx) =>
    tx.query(`update customers set name = 'Anna', address = 'New street 2', phone = '556', updated_at = updated_at + interval '1 minute' where id = $1`, [ids.customer]),
  )
  // incidental only, and a no-op: no event
  await db.query(`update customers set updated_at = updated_at + interval '1 minute' where id = $1`, [ids.customer])
  await db.query(`update customers set name = name where id = $1`, [ids.customer])
  // no context at all: the database user, source sql
  await db.query(`update products set price = 11.25, category = 'hardware' where id = $1`, [ids.product])
  // who/why changes inside one transaction; a rolled-back savepoint leaves nothing
  await db.begin(async (tx) => {
    await tx.query(`select set_config('cdc.actor', 'carol', true)`)
    await tx.query(`update customers set email = 'anna@x' where id = $1`, [ids.customer])
    await tx.query(`select set_config('cdc.actor', 'dave', true), set_config('cdc.reason', 'second thoughts', true)`)
    await tx.query(`update products set name = 'Big hammer' where id = $1`, [ids.product])
    await tx.query('savepoint s1')
    await tx.query(`update customers set name = 'Never' where id = $1`, [ids.customer])
    await tx.query('rollback to savepoint s1')
    await tx.query(`select cdc.emit('customers', $1, 'CustomerContacted', '{"channel":"phone"}')`, [String(ids.customer)])
  })
  // a TOASTed value (stored out of line), then an update that leaves it unchanged: the WAL does not carry it
  await db.query(`update customers set address = (select string_agg(md5(i::text), '') from generate_series(1, 600) i) where id = $1`, [ids.customer])
  await db.query(`update customers set phone = '557', name = 'Anne' where id = $1`, [ids.customer])
  // an order with lines: OrderPlaced, the root document with the product as of the commit, then status rules
  const order = await withSettings(db, { actor: 'shop', source: 'api' }, async (tx) => {
    const [o] = await tx.query<{ id: number }>(`insert into orders (customer_id, shipping_address, created_at, updated_at) values ($1, 'Dock 1', '2026-01-02Z', '2026-01-02Z') returning id`, [ids.customer])
    await tx.query(`insert into order_lines (order_id, product_id, quantity, unit_price) values ($1, $2, 2, 11.25), ($1, $2, 1, 11.25)`, [o!.id, ids.product])
    await tx.query(`update orders set total = 33.75 where id = $1`, [o!.id])
    return o!.id
  })
  await db.query(`update products set name = 'Renamed hammer' where id = $1`, [ids.product])
  await db.query(`update orders set status = 'PAYMENT_CONFIRMED' where id = $1`, [order])
  await db.query(`update order_lines set quantity = 3 where order_id = $1 and quantity = 1`, [order])
  await db.query(`update orders set status = 'CANCELLED' where id = $1`, [order])
  // a second order, placed after the rename: its line has the new name; repriced after, and its line changes
  const order2 = await db.begin(async (tx) => {
    const [o] = await tx.query<{ id: number }>(`insert into orders (customer_id, shipping_address, total, created_at, updated_at) values ($1, 'Dock 2', 11.25, '2026-01-03Z', '2026-01-03Z') returning id`, [ids.customer])
    await tx.query(`insert into order_lines (order_id, product_id, quantity, unit_price) values ($1, $2, 1, 11.25)`, [o!.id, ids.product])
    return o!.id
  })
  await db.query(`update products set price = 12 where id = $1`, [ids.product])
  await db.query(`update orders set status = 'PAYMENT_CONFIRMED', updated_at = updated_at + interval '1 hour' where id = $1`, [order2])
  await db.query(`update order_lines set quantity = 2 where order_id = $1`, [order2])
  // a root with a separate document event (documentEvent), tracked at run time
  await db.query(`create table public.carts (id int primary key, owner text not null)`)
  await db.query(`create table public.cart_items (id int primary key, cart_id int not null references public.carts on delete cascade, product_id bigint not null, n int not null)`)
  rt.config.capture.roots.carts = {
    documentEvent: true,
    children: [{ table: 'cart_items', foreignKey: 'cart_id', lookups: [{ column: 'product_id', table: 'products', columns: ['name'] }] }],
  }
  await track(rt, 'carts') // a root: its commit-time triggers come with it
  await db.begin(async (tx) => {
    await tx.query(`insert into carts values (1, 'ann')`)
    await tx.query(`insert into cart_items values (1, 1, $1, 2)`, [ids.product])
  })
  await db.query(`update products set name = 'Cart hammer' where id = $1`, [ids.product])
  await db.query(`update carts set owner = 'anna' where id = 1`)
  await db.query(`delete from carts where id = 1`)
  // deletes: the whole row as the before image (the cascade deletes the lines too); a hard delete of an order is
  // OrderCancelled with reason HARD_DELETE unless the writer gave one
  await db.query(`delete from orders where id = $1`, [order])
  await withSettings(db, { reason: 'customer asked' }, (tx) => tx.query(`delete from orders where id = $1`, [order2]))
  await db.query(`delete from products where id = $1`, [ids.product])
}

/** The envelope without what legitimately differs between runs and modes. */
function comparable(e: CdcEvent) {
  const { id, occurredAt, tx, ...rest } = e
  return { ...rest, tx: { index: tx.index } }
}

/** Every stored event reached Kafka once with tx.size = the number of stored events sharing its tx.id. */
async function expectTxSizes(env: TestEnv, stored: CdcEvent[]) {
  const topics = [...new Set(stored.map((e) => topicFor(env.config, e.aggregate.type, e.type)))]
  const published = new Map<string, CdcEvent>()
  await readUntil(env, topics, (messages) => {
    for (const m of messages) {
      const e = JSON.parse(m.value!.toString()) as CdcEvent
      published.set(e.id, e)
    }
    return published.size >= stored.length
  }).catch((error) => {
    throw new Error(`${published.size} of ${stored.length} events published (${(error as Error).message})`)
  })
  const perTx = new Map<string, number>()
  for (const e of stored) perTx.set(e.tx.id, (perTx.get(e.tx.id) ?? 0) + 1)
  expect(Math.max(...perTx.values())).toBeGreaterThan(2)
  for (const e of stored) {
    const p = published.get(e.id)
    expect({ id: e.id, tx: p?.tx }).toEqual({ id: e.id, tx: { ...e.tx, size: perTx.get(e.tx.id)! } })
  }
}

const results = new Map<Mode, ReturnType<typeof comparable>[]>()

for (const mode of MODES) {
  test(`capture scenarios in ${mode} mode`, async () => {
    const env: TestEnv = await migratedEnv(configure(mode))
    let relay: Role | undefined
    cleanups.push(async () => {
      await relay?.stop()
      await cleanupEnv(env)
    })
    relay = await startRelay(env.rt, { mode: mode === 'outbox' ? 'poll' : 'wal' })
    const db = env.rt.db()
    // emit mode has no outbox: only what is written once the relay's slot exists reaches Kafka
    if (mode !== 'outbox') await eventually(async () => (await db.query('select 1 from pg_replication_slots where slot_name = $1', [env.config.relay.slot])).length > 0)
    await scenarios(env.rt)
    const expected = results.get('outbox')?.length
    if (mode === 'outbox') {
      await eventually(async () => (await db.query<{ n: number }>('select count(*)::int as n from cdc.outbox'))[0]!.n === 0, 30_000)
    } else {
      // the relay publishes (logical: writes the event store) after the commits: wait until its slot has confirmed
      // past the last one
      const [last] = await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')
      await eventually(async () => {
        const [s] = await db.query<{ ok: boolean }>(
          'select confirmed_flush_lsn >= $1::pg_lsn as ok from pg_replication_slots where slot_name = $2',
          [last!.lsn, env.config.relay.slot],
        )
        return s?.ok
      }, 30_000)
    }
    if (mode === 'logical') {
      // logical mode has no row trigger on tracked tables
      const triggers = await db.query<{ tgname: string }>(
        `select tgname from pg_trigger where tgrelid = 'public.customers'::regclass and not tgisinternal and tgtype & 1 = 1`,
      )
      expect(triggers).toEqual([])
    }
    const events = (await storedEvents(db)).map(comparable)
    if (process.env.CONF_DEBUG) console.log(JSON.stringify(events.map((e) => `${e.aggregate.type}:${e.type}:${e.version}:${e.actor.id}`)))
    if (expected !== undefined) expect(events.length).toBe(expected)
    results.set(mode, events)
    if (mode !== 'outbox') expect(events).toEqual(results.get('outbox')!)
    await expectTxSizes(env, await storedEvents(db))
  }, 120_000)
}

test('the scenarios produce what trigger mode promises (sanity of the reference run)', () => {
  const events = results.get('outbox')!
  const types = events.map((e) => `${e.aggregate.type}:${e.type}:${e.version}`)
  expect(types).toContain('customers:CustomerContacted:6')
  expect(types.filter((t) => t.startsWith('carts:'))).toEqual(['carts:CartCreated:1', 'carts:CartDocumentChanged:2', 'carts:CartUpdated:3', 'carts:CartDocumentChanged:4', 'carts:CartDeleted:5'])
  // a root's events carry its lines; lookups stay as each line was written (a line rewritten later takes the new ones)
  const orders = events.filter((e) => e.aggregate.type === 'orders')
  expect(orders.map((e) => `${e.aggregate.id}:${e.type}:${e.op}:${e.reason}`)).toEqual([
    '1:OrderPlaced:c:null', '1:OrderUpdated:u:null', '1:PaymentConfirmed:u:null', '1:OrderUpdated:u:null', '1:OrderCancelled:u:null',
    '1:OrderCancelled:d:HARD_DELETE', '2:OrderPlaced:c:null', '2:PaymentConfirmed:u:null', '2:OrderUpdated:u:null', '2:OrderCancelled:d:customer asked',
  ])
  const names = (e: Pick<CdcEvent, 'before' | 'after'> | undefined, image: 'before' | 'after' = 'after') =>
    (e?.[image]?.order_lines as { quantity: number; product: { name: string; price: number } }[]).map((l) => `${l.quantity} ${l.product.name} ${l.product.price}`)
  expect(names(orders[0])).toEqual(['2 Big hammer 11.25', '1 Big hammer 11.25'])
  expect(names(orders[3])).toEqual(['2 Big hammer 11.25', '3 Renamed hammer 11.25'])
  expect(orders[3]!.changes.map((c) => c.path)).toEqual(['order_lines'])
  expect(names(orders[5], 'before')).toEqual(['2 Big hammer 11.25', '3 Renamed hammer 11.25'])
  expect(names(orders[7])).toEqual(['1 Renamed hammer 11.25'])
  expect(names(orders[8])).toEqual(['2 Renamed hammer 12'])
  // updated_at is bookkeeping: never a change, yet the images carry it
  expect(events.some((e) => e.changes.some((c) => c.path === 'updated_at'))).toBe(false)
  expect([orders[7]!.before!.updated_at, orders[7]!.after!.updated_at]).toEqual(['2026-01-03T00:00:00+00:00', '2026-01-03T01:00:00+00:00'])
  // the separate document event froze the cart item's product name too
  const carts = events.filter((e) => e.type === 'CartDocumentChanged')
  expect(carts[1]!.changes.map((c) => c.path)).toEqual(['owner'])
  const anne = events.find((e) => e.type === 'CustomerUpdated' && e.changes.some((c) => c.path === 'phone' && c.after === '***'))
  expect(anne).toBeDefined()
  expect(events.every((e) => !('category' in (e.after ?? {})))).toBe(true)
  // the key changes and the REPLICA IDENTITY FULL table made their events (compared above in the other modes)
  expect(types.filter((t) => t.startsWith('tags:')).length).toBeGreaterThanOrEqual(5)
  expect(types).toContain('stock:StockDeleted:2')
  // incidental: rides along with the first event's changes; alone it makes none
  expect(events.filter((e) => e.type === 'StockUpdated').map((e) => e.changes.map((c) => c.path))).toEqual([['sku', 'qty', 'note']])
})
