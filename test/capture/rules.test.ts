// Business events from capture.rules (the demo's rules), bookkeeping columns, and the order document as of the commit
// carried by the order's own events (capture.roots).
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { TestEnv } from '../support/env.ts'
import { migratedEnv, storedEvents, withSettings } from './support.ts'

let env: TestEnv
beforeAll(async () => {
  env = await migratedEnv()
})
afterAll(() => env.cleanup())

const db = () => env.rt.db()

async function newCustomer(email: string) {
  const [c] = await db().query<{ id: number }>(
    `insert into customers (name, email, address, phone) values ('Ann', $1, 'Old street 1', '555') returning id`,
    [email],
  )
  return String(c!.id)
}

test('one UPDATE of name and address yields two atomic events with stepping images, the rest in CustomerUpdated', async () => {
  const id = await newCustomer('ann@example.com')
  await withSettings(db(), { actor: 'bob' }, (tx) =>
    tx.query(`update customers set name = 'Anna', address = 'New street 2', phone = '556', updated_at = updated_at + interval '1 minute' where id = $1`, [id]),
  )
  const events = (await storedEvents(db(), 'customers')).filter((e) => e.aggregate.id === id)
  expect(events.map((e) => [e.type, e.version, e.tx.index])).toEqual([
    ['CustomerCreated', 1, 0],
    ['CustomerNameChanged', 2, 0],
    ['CustomerAddressChanged', 3, 1],
    ['CustomerUpdated', 4, 2],
  ])
  const [created, name, address, rest] = events as [(typeof events)[0], (typeof events)[0], (typeof events)[0], (typeof events)[0]]
  expect(new Set(events.slice(1).map((e) => e.tx.id)).size).toBe(1)
  // updated_at is bookkeeping: in the images, never in changes
  expect(name.changes).toEqual([{ path: 'name', before: 'Ann', after: 'Anna' }])
  expect(name.after!.updated_at).not.toEqual(created.after!.updated_at)
  expect(address.changes).toEqual([{ path: 'address', before: 'Old street 1', after: 'New street 2' }])
  expect(rest.changes).toEqual([{ path: 'phone', before: '555', after: '556' }])
  expect(name.before).toEqual(created.after)
  expect(name.after).toMatchObject({ name: 'Anna', address: 'Old street 1', phone: '555' })
  expect(rest.after!.updated_at).toEqual(name.after!.updated_at)
  expect(address.before).toEqual(name.after)
  expect(address.after).toMatchObject({ name: 'Anna', address: 'New street 2', phone: '555' })
  expect(rest.before).toEqual(address.after)
  const [row] = await db().query<{ row: unknown }>(`select to_jsonb(c) as row from customers c where id = $1`, [id])
  expect(rest.after).toEqual(row!.row as Record<string, unknown>)
})

test('an update of bookkeeping columns only produces no event', async () => {
  const id = await newCustomer('quiet@example.com')
  await db().query(`update customers set updated_at = now() + interval '1 hour' where id = $1`, [id])
  const events = (await storedEvents(db(), 'customers')).filter((e) => e.aggregate.id === id)
  expect(events.map((e) => e.type)).toEqual(['CustomerCreated'])
})

test('order lifecycle: one event per fact, each with the order and its lines as they were when written', async () => {
  const customer = await newCustomer('orders@example.com')
  const [product] = await db().query<{ id: number }>(`insert into products (category, name, price) values ('pens', 'Pen', 42.50) returning id`)
  const orderId = await db().begin(async (tx) => {
    const [o] = await tx.query<{ id: number }>(`insert into orders (customer_id, shipping_address, total) values ($1, 'Street 1', 127.50) returning id`, [customer])
    await tx.query(`insert into order_lines (order_id, product_id, quantity, unit_price) values ($1, $2, 2, 42.50), ($1, $2, 1, 42.50)`, [o!.id, product!.id])
    return String(o!.id)
  })
  // a catalog edit after the order was placed never reaches the order's history
  await db().query(`update products set name = 'Renamed pen', price = 39.90 where id = $1`, [product!.id])
  for (const status of ['PAYMENT_CONFIRMED', 'SHIPPED', 'DELIVERED']) {
    await db().query(`update orders set status = $2, updated_at = now() + interval '1 minute' where id = $1`, [orderId, status])
  }
  const events = (await storedEvents(db(), 'orders')).filter((e) => e.aggregate.id === orderId)
  expect(events.map((e) => [e.type, e.version])).toEqual([
    ['OrderPlaced', 1],
    ['PaymentConfirmed', 2],
    ['OrderShipped', 3],
    ['OrderDelivered', 4],
  ])
  expect(await storedEvents(db(), 'order_lines')).toEqual([])
  const placed = events[0]!
  expect(placed.after).toMatchObject({ total: 127.5, status: 'PLACED' })
  for (const e of events) {
    const lines = e.after!.order_lines as { quantity: number; product: { name: string; price: number } }[]
    expect(lines.map((l) => [l.quantity, l.product])).toEqual([
      [2, { name: 'Pen', price: 42.5 }],
      [1, { name: 'Pen', price: 42.5 }],
    ])
  }
  expect(JSON.stringify(events)).not.toContain('Renamed pen')
  const shipped = events[2]!
  expect(shipped.changes).toEqual([{ path: 'status', before: 'PAYMENT_CONFIRMED', after: 'SHIPPED' }])
  expect(shipped.before).toEqual(events[1]!.after)
})

test('a change of lines only is <Aggregate>Updated with the lines in changes; a line rewritten takes the lookups of then', async () => {
  const customer = await newCustomer('lines@example.com')
  const [product] = await db().query<{ id: number }>(`insert into products (category, name, price) values ('pens', 'Quill', 5) returning id`)
  const [o] = await db().query<{ id: number }>(`insert into orders (customer_id, shipping_address) values ($1, 'S') returning id`, [customer])
  const id = String(o!.id)
  await db().query(`insert into order_lines (order_id, product_id, quantity, unit_price) values ($1, $2, 1, 5)`, [id, product!.id])
  await db().query(`update products set name = 'Goose quill' where id = $1`, [product!.id])
  await db().query(`update order_lines set quantity = 4 where order_id = $1`, [id])
  const events = (await storedEvents(db(), 'orders')).filter((e) => e.aggregate.id === id)
  expect(events.map((e) => e.type)).toEqual(['OrderPlaced', 'OrderUpdated', 'OrderUpdated'])
  expect(events[0]!.after!.order_lines).toEqual([])
  expect(events[1]!.changes).toEqual([{ path: 'order_lines', before: [], after: events[1]!.after!.order_lines }])
  const names = events.slice(1).map((e) => (e.after!.order_lines as { product: { name: string } }[])[0]!.product.name)
  expect(names).toEqual(['Quill', 'Goose quill'])
})

test('cancelling an order, then deleting it: OrderCancelled twice, the hard delete with reason HARD_DELETE', async () => {
  const customer = await newCustomer('cancel@example.com')
  const [o] = await db().query<{ id: number }>(`insert into orders (customer_id, shipping_address) values ($1, 'S') returning id`, [customer])
  const id = String(o!.id)
  await withSettings(db(), { reason: 'out of stock' }, (tx) => tx.query(`update orders set status = 'CANCELLED' where id = $1`, [id]))
  await db().query(`delete from orders where id = $1`, [id])
  const events = (await storedEvents(db(), 'orders')).filter((e) => e.aggregate.id === id)
  expect(events.map((e) => [e.type, e.op, e.reason])).toEqual([
    ['OrderPlaced', 'c', null],
    ['OrderCancelled', 'u', 'out of stock'],
    ['OrderCancelled', 'd', 'HARD_DELETE'],
  ])
  expect(events[2]!.before).toEqual(events[1]!.after)
  // the rule's reason applied to that event only
  const [setting] = await db().query<{ reason: string | null }>(`select current_setting('cdc.reason', true) as reason`)
  expect(setting!.reason ?? '').toBe('')
})

test('SET CONSTRAINTS ALL IMMEDIATE folds early; what the transaction changes afterwards is folded and published too', async () => {
  const customer = await newCustomer('immediate@example.com')
  const [product] = await db().query<{ id: number }>(`insert into products (category, name, price) values ('pens', 'Stylus', 7) returning id`)
  const id = await db().begin(async (tx) => {
    const [o] = await tx.query<{ id: number }>(`insert into orders (customer_id, shipping_address) values ($1, 'S') returning id`, [customer])
    await tx.query('set constraints all immediate')
    await tx.query(`insert into order_lines (order_id, product_id, quantity, unit_price) values ($1, $2, 1, 7)`, [o!.id, product!.id])
    await tx.query(`update orders set status = 'PAYMENT_CONFIRMED' where id = $1`, [o!.id])
    return String(o!.id)
  })
  const events = (await storedEvents(db(), 'orders')).filter((e) => e.aggregate.id === id)
  expect(events.map((e) => e.type)).toEqual(['OrderPlaced', 'OrderUpdated', 'PaymentConfirmed'])
  expect((events[2]!.after!.order_lines as unknown[]).length).toBe(1)
  // every one of them went to the outbox (none held back in the event store)
  const queued = await db().query(`select 1 from cdc.outbox o join cdc.event_store e on e.id = o.event_id where e.aggregate_type = 'orders' and e.aggregate_id = $1`, [id])
  expect(queued.length).toBe(3)
})

test('with documentEvent the order events stay row images and <Aggregate>DocumentChanged follows them', async () => {
  const env2 = await migratedEnv((c) => {
    c.capture.roots.orders!.documentEvent = true
  })
  try {
    const db2 = env2.rt.db()
    const [c] = await db2.query<{ id: number }>(`insert into customers (name, email) values ('Bo', 'bo@example.com') returning id`)
    const [p] = await db2.query<{ id: number }>(`insert into products (category, name, price) values ('pens', 'Nib', 1) returning id`)
    const id = await db2.begin(async (tx) => {
      const [o] = await tx.query<{ id: number }>(`insert into orders (customer_id, shipping_address) values ($1, 'S') returning id`, [c!.id])
      await tx.query(`insert into order_lines (order_id, product_id, quantity, unit_price) values ($1, $2, 1, 1)`, [o!.id, p!.id])
      return String(o!.id)
    })
    await db2.query(`update products set name = 'Gold nib' where id = $1`, [p!.id])
    await db2.query(`update orders set status = 'PAYMENT_CONFIRMED' where id = $1`, [id])
    const events = (await storedEvents(db2, 'orders')).filter((e) => e.aggregate.id === id)
    expect(events.map((e) => e.type)).toEqual(['OrderPlaced', 'OrderDocumentChanged', 'PaymentConfirmed', 'OrderDocumentChanged'])
    expect(events[0]!.after!.order_lines).toBeUndefined()
    expect(events[3]!.changes.map((x) => x.path)).toEqual(['status'])
    expect((events[3]!.after!.order_lines as { product: { name: string } }[])[0]!.product.name).toBe('Nib')
  } finally {
    await env2.cleanup()
  }
})
