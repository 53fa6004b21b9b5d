// The demo's order flow through the whole pipeline, in every capture mode (API → capture → relay → Kafka → consumer
// → MongoDB → API history): exactly one event per business fact, each carrying the order with its lines as they were
// when written; a product renamed and repriced after the order never appears in the order's history; the bookkeeping
// column updated_at is in the images but never in changes; a hard delete is OrderCancelled with reason HARD_DELETE.
import { afterAll, expect, test } from 'bun:test'
import { startConsumer } from '../../src/consume/index.ts'
import { startRelay } from '../../src/relay/index.ts'
import type { Role } from '../../src/runtime.ts'
import { cleanupEnv } from '../relay/support.ts'
import { eventually } from '../support/env.ts'
import { createApiEnv } from './support.ts'

const cleanups: (() => Promise<void>)[] = []
afterAll(async () => {
  for (const c of cleanups.reverse()) await c()
})

interface Line {
  id: number
  quantity: number
  unit_price: number
  product: { name: string; price: number }
}

for (const mode of ['outbox', 'emit', 'logical'] as const) {
  test(`order flow in ${mode} mode: one event per fact, lines as they were, bookkeeping out of changes, hard delete`, async () => {
    const api = await createApiEnv((c) => {
      c.capture.mode = mode
    })
    const roles: Role[] = []
    cleanups.push(async () => {
      for (const r of roles.reverse()) await r.stop().catch(() => {})
      await cleanupEnv(api)
    })
    roles.push(await startRelay(api.rt, mode === 'emit' ? { mode: 'wal' } : {}))
    roles.push(await startConsumer(api.rt))
    const ok = async (method: string, path: string, body?: unknown, status = 200) => {
      const res = await api.call(method, path, { body, headers: { 'x-actor': 'shop' } })
      expect(res.status).toBe(status)
      return res.body
    }

    const customer = await ok('POST', '/customers', { name: 'Ann', email: 'ann@example.com' }, 201)
    const pen = await ok('POST', '/products', { category: 'office', name: 'Pen', price: 42.5 }, 201)
    const ink = await ok('POST', '/products', { category: 'office', name: 'Ink', price: 3 }, 201)
    const order = await ok('POST', '/orders', { customerId: customer.id, shippingAddress: 'Dock 1', lines: [{ productId: pen.id, quantity: 2 }, { productId: ink.id, quantity: 1 }] }, 201)
    // the catalog changes after the order was placed
    await ok('PATCH', `/products/${pen.id}`, { name: 'Fountain pen', price: 39.9 })
    for (const status of ['PAYMENT_CONFIRMED', 'SHIPPED', 'DELIVERED']) await ok('POST', `/orders/${order.id}/status`, { status })
    const doomed = await ok('POST', '/orders', { customerId: customer.id, shippingAddress: 'Dock 2', lines: [{ productId: ink.id, quantity: 3 }] }, 201)
    await ok('DELETE', `/orders/${doomed.id}`, undefined, 204)

    const historyOf = (id: number, count: number) =>
      eventually(async () => {
        const res = await api.call('GET', `/history/orders/${id}`)
        return res.status === 200 && res.body.items.length >= count ? (res.body.items as any[]) : undefined
      }, 45_000)
    const items = await historyOf(order.id, 4)
    expect(items.map((e) => e.type)).toEqual(['OrderPlaced', 'PaymentConfirmed', 'OrderShipped', 'OrderDelivered'])
    // OrderPlaced carries the lines, priced and named as when they were written; so does every later event
    const expected = [
      { quantity: 2, unit_price: 42.5, product: { name: 'Pen', price: 42.5 } },
      { quantity: 1, unit_price: 3, product: { name: 'Ink', price: 3 } },
    ]
    for (const e of items) expect((e.after.order_lines as Line[]).map(({ quantity, unit_price, product }) => ({ quantity, unit_price, product }))).toEqual(expected)
    expect(JSON.stringify(items)).not.toContain('Fountain pen')
    // the lines only: a timestamp such as 17:14:39.963 would contain it too
    expect(JSON.stringify(items.map((e) => [e.before?.order_lines, e.after.order_lines]))).not.toContain('39.9')
    // bookkeeping: updated_at moves in the images but is never a change
    for (const e of items.slice(1)) {
      expect(e.changes.map((c: { path: string }) => c.path)).toEqual(['status'])
      expect(e.after.updated_at).not.toBe(e.before.updated_at)
    }
    // nothing else was recorded for the order, and its lines make no events of their own
    const [counts] = await api.rt.db().query<{ orders: number; lines: number }>(
      `select count(*) filter (where aggregate_type = 'orders' and aggregate_id = $1)::int as orders,
              count(*) filter (where aggregate_type = 'order_lines')::int as lines from cdc.event_store`,
      [String(order.id)],
    )
    expect(counts).toEqual({ orders: 4, lines: 0 })

    const gone = await historyOf(doomed.id, 2)
    expect(gone.map((e) => [e.type, e.op, e.reason])).toEqual([
      ['OrderPlaced', 'c', null],
      ['OrderCancelled', 'd', 'HARD_DELETE'],
    ])
    expect(gone[1].before.order_lines.map((l: Line) => l.quantity)).toEqual([3])
  }, 120_000)
}
