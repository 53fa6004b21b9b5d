// Business events from capture.rules (cdc.toml's demo rules) and the commit-time order document (capture.roots).
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
  // updated_at is incidental: it rides along with the first event
  expect(name.changes.map((c) => c.path).sort()).toEqual(['name', 'updated_at'])
  expect(address.changes).toEqual([{ path: 'address', before: 'Old street 1', after: 'New street 2' }])
  expect(rest.changes).toEqual([{ path: 'phone', before: '555', after: '556' }])
  expect(name.before).toEqual(created.after)
  expect(name.after).toMatchObject({ name: 'Anna', address: 'Old street 1', phone: '555' })
  expect(address.before).toEqual(name.after)
  expect(address.after).toMatchObject({ name: 'Anna', address: 'New street 2', phone: '555' })
  expect(rest.before).toEqual(address.after)
  const [row] = await db().query<{ row: unknown }>(`select to_jsonb(c) as row from customers c where id = $1`, [id])
  expect(rest.after).toEqual(row!.row as Record<string, unknown>)
})

test('an update of incidental columns only produces no event', async () => {
  const id = await newCustomer('quiet@example.com')
  await db().query(`update customers set updated_at = now() + interval '1 hour' where id = $1`, [id])
  const events = (await storedEvents(db(), 'customers')).filter((e) => e.aggregate.id === id)
  expect(events.map((e) => e.type)).toEqual(['CustomerCreated'])
})

test('order lifecycle events by status value, and one order document per transaction at commit', async () => {
  const customer = await newCustomer('orders@example.com')
  const [product] = await db().query<{ id: number }>(`insert into products (category, name, price) values ('pens', 'Pen', 2.50) returning id`)
  const orderId = await db().begin(async (tx) => {
    const [o] = await tx.query<{ id: number }>(`insert into orders (customer_id, shipping_address) values ($1, 'Street 1') returning id`, [customer])
    await tx.query(`insert into order_lines (order_id, product_id, quantity, unit_price) values ($1, $2, 2, 2.50), ($1, $2, 1, 2.50)`, [o!.id, product!.id])
    await tx.query(`update orders set total = 7.50 where id = $1`, [o!.id])
    return String(o!.id)
  })
  for (const status of ['PAYMENT_CONFIRMED', 'SHIPPED', 'DELIVERED']) {
    await db().query(`update orders set status = $2, updated_at = now() where id = $1`, [orderId, status])
  }
  await db().query(`update products set name = 'Renamed pen', price = 9 where id = $1`, [product!.id])
  const events = (await storedEvents(db(), 'orders')).filter((e) => e.aggregate.id === orderId)
  expect(events.map((e) => [e.type, e.version])).toEqual([
    ['OrderPlaced', 1],
    ['OrderUpdated', 2],
    ['OrderDocumentChanged', 3],
    ['PaymentConfirmed', 4],
    ['OrderDocumentChanged', 5],
    ['OrderShipped', 6],
    ['OrderDocumentChanged', 7],
    ['OrderDelivered', 8],
    ['OrderDocumentChanged', 9],
  ])
  const first = events[2]!
  expect(first.op).toBe('u')
  expect(first.tx.id).toBe(events[0]!.tx.id)
  expect(first.after).toMatchObject({ total: 7.5, status: 'PLACED' })
  const lines = first.after!.order_lines as { quantity: number; product: { name: string; price: number } }[]
  expect(lines.map((l) => [l.quantity, l.product])).toEqual([
    [2, { name: 'Pen', price: 2.5 }],
    [1, { name: 'Pen', price: 2.5 }],
  ])
  const shipped = events[5]!
  expect(shipped.changes.filter((c) => c.path === 'status')).toEqual([{ path: 'status', before: 'PAYMENT_CONFIRMED', after: 'SHIPPED' }])
  // the product rename after the fact changed no order event
  const last = events[8]!
  expect((last.after!.order_lines as { product: { name: string } }[])[0]!.product.name).toBe('Pen')
  expect(last.changes.map((c) => c.path).sort()).toEqual(['status', 'updated_at'])
})

test('cancelling an order, and deleting it (no document for a deleted root)', async () => {
  const customer = await newCustomer('cancel@example.com')
  const [o] = await db().query<{ id: number }>(`insert into orders (customer_id, shipping_address) values ($1, 'S') returning id`, [customer])
  const id = String(o!.id)
  await db().query(`update orders set status = 'CANCELLED' where id = $1`, [id])
  await db().query(`delete from orders where id = $1`, [id])
  const events = (await storedEvents(db(), 'orders')).filter((e) => e.aggregate.id === id)
  expect(events.map((e) => e.type)).toEqual(['OrderPlaced', 'OrderDocumentChanged', 'OrderCancelled', 'OrderDocumentChanged', 'OrderDeleted'])
})
