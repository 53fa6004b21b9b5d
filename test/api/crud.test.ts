// CRUD over the demo tables through the API, against the real PostgreSQL: resources, pagination, order rules,
// constraint mapping, and the who/why every write hands to the capture trigger.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createApiEnv, type ApiEnv } from './support.ts'

let api: ApiEnv
beforeAll(async () => {
  api = await createApiEnv((c) => {
    c.http.maxPageSize = 3
  })
})
afterAll(() => api.cleanup())

const lastEvent = async () => {
  const [row] = await api.rt.db().query<{ payload: any }>('select payload from cdc.event_store order by occurred_at desc, version desc limit 1')
  return row!.payload
}

describe('customers', () => {
  test('create, read, patch, delete; the events carry actor, reason, request id and causation id', async () => {
    const created = await api.call('POST', '/customers', {
      body: { name: 'Ann', email: 'ann@example.com', phone: '+49 30 1234' },
      headers: { 'x-actor': 'alice', 'x-reason': 'signup', 'x-request-id': 'req-1', 'x-causation-id': 'cmd:signup/7' },
    })
    expect(created.status).toBe(201)
    expect(created.headers.get('x-request-id')).toBe('req-1')
    expect(created.body).toMatchObject({ name: 'Ann', email: 'ann@example.com', address: null, phone: '+49 30 1234' })
    const id = created.body.id
    expect(created.headers.get('location')).toBe(`/customers/${id}`)
    const event = await lastEvent()
    expect(event).toMatchObject({ op: 'c', actor: { id: 'alice', source: 'api' }, reason: 'signup', correlationId: 'req-1', causationId: 'cmd:signup/7' })

    expect((await api.call('GET', `/customers/${id}`)).body).toEqual(created.body)

    const patched = await api.call('PATCH', `/customers/${id}`, { body: { address: 'Main St 1' }, headers: { 'x-actor': 'bob' } })
    expect(patched.status).toBe(200)
    expect(patched.body).toMatchObject({ name: 'Ann', address: 'Main St 1', phone: '+49 30 1234' })
    expect(await lastEvent()).toMatchObject({ op: 'u', actor: { id: 'bob' }, reason: null, causationId: null })

    // Setting a nullable field to null is a change; a PATCH that changes nothing makes no event.
    expect((await api.call('PATCH', `/customers/${id}`, { body: { phone: null } })).body.phone).toBeNull()
    const before = (await api.counts()).events
    const same = await api.call('PATCH', `/customers/${id}`, { body: { name: 'Ann' } })
    expect(same.status).toBe(200)
    expect((await api.counts()).events).toBe(before)

    const gone = await api.call('DELETE', `/customers/${id}`, { headers: { 'x-reason': 'gdpr' } })
    expect(gone.status).toBe(204)
    expect(await lastEvent()).toMatchObject({ op: 'd', reason: 'gdpr', actor: { id: 'anonymous' } })
    expect((await api.call('GET', `/customers/${id}`)).status).toBe(404)
    expect((await api.call('DELETE', `/customers/${id}`)).status).toBe(404)
    expect((await api.call('PATCH', `/customers/${id}`, { body: { name: 'x' } })).status).toBe(404)
  })

  test('X-Reason and X-Actor sent as UTF-8 bytes arrive as text', async () => {
    const asHeader = (text: string) => Buffer.from(text, 'utf8').toString('latin1')
    const res = await api.call('POST', '/customers', {
      body: { name: 'Jörg', email: 'joerg@example.com' },
      headers: { 'x-actor': asHeader('zoë'), 'x-reason': asHeader('Kündigung – Ticket 7') },
    })
    expect(res.status).toBe(201)
    expect(await lastEvent()).toMatchObject({ actor: { id: 'zoë' }, reason: 'Kündigung – Ticket 7' })
  })

  test('a duplicate email is a 409 problem and changes nothing', async () => {
    await api.call('POST', '/customers', { body: { name: 'Dup', email: 'dup@example.com' } })
    const other = await api.call('POST', '/customers', { body: { name: 'Other', email: 'other@example.com' } })
    const counts = await api.counts()
    const res = await api.call('POST', '/customers', { body: { name: 'Dup 2', email: 'dup@example.com' } })
    expect(res.status).toBe(409)
    expect(res.headers.get('content-type')).toBe('application/problem+json')
    expect(res.body).toMatchObject({ status: 409, title: 'Conflict', detail: expect.stringContaining('email') })
    const patch = await api.call('PATCH', `/customers/${other.body.id}`, { body: { email: 'dup@example.com' } })
    expect(patch.status).toBe(409)
    expect(await api.counts()).toEqual(counts)
  })

  test('lists page by cursor in id order; limit is capped at http.maxPageSize', async () => {
    for (let i = 0; i < 5; i++) await api.call('POST', '/customers', { body: { name: `P${i}`, email: `page${i}@example.com` } })
    const all: number[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const res: any = await api.call('GET', `/customers?limit=100${cursor ? `&cursor=${cursor}` : ''}`)
      expect(res.status).toBe(200)
      expect(res.body.items.length).toBeLessThanOrEqual(3)
      all.push(...res.body.items.map((c: { id: number }) => c.id))
      cursor = res.body.nextCursor
      pages++
    } while (cursor)
    const [{ n }] = (await api.rt.db().query<{ n: number }>('select count(*)::int as n from customers')) as [{ n: number }]
    expect(all.length).toBe(n)
    expect(all).toEqual([...all].sort((a, b) => a - b))
    expect(pages).toBe(Math.ceil(n / 3))
    const one = await api.call('GET', '/customers?limit=1')
    expect(one.body.items.length).toBe(1)
    expect(one.body.nextCursor).toBeString()
  })

  test('X-Reason is required for deletes when http.requireDeleteReason', async () => {
    const strict = await createApiEnv((c) => {
      c.http.requireDeleteReason = true
    })
    try {
      const { body } = await strict.call('POST', '/customers', { body: { name: 'R', email: 'r@example.com' } })
      const counts = await strict.counts()
      const res = await strict.call('DELETE', `/customers/${body.id}`)
      expect(res.status).toBe(400)
      expect(res.body.errors).toEqual([{ path: 'headers.x-reason', message: 'required for DELETE' }])
      expect(await strict.counts()).toEqual(counts)
      expect((await strict.call('DELETE', `/customers/${body.id}`, { headers: { 'x-reason': 'asked to' } })).status).toBe(204)
    } finally {
      await strict.cleanup()
    }
  })
})

describe('products', () => {
  test('create, read, patch, list, delete', async () => {
    const created = await api.call('POST', '/products', { body: { category: 'books', name: 'SQL', price: 12.5 } })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ category: 'books', name: 'SQL', price: 12.5 })
    const id = created.body.id
    expect((await api.call('PATCH', `/products/${id}`, { body: { price: 0 } })).body.price).toBe(0)
    expect((await api.call('GET', `/products/${id}`)).body).toMatchObject({ price: 0, name: 'SQL' })
    expect((await api.call('GET', '/products')).body.items.map((p: { id: number }) => p.id)).toContain(id)
    expect((await api.call('DELETE', `/products/${id}`)).status).toBe(204)
    expect((await api.call('GET', `/products/${id}`)).status).toBe(404)
  })
})

describe('orders', () => {
  let customerId: number
  let pen: { id: number }
  let ink: { id: number }
  beforeAll(async () => {
    customerId = (await api.call('POST', '/customers', { body: { name: 'Buyer', email: 'buyer@example.com' } })).body.id
    pen = (await api.call('POST', '/products', { body: { category: 'office', name: 'Pen', price: 1.1 } })).body
    ink = (await api.call('POST', '/products', { body: { category: 'office', name: 'Ink', price: 2.35 } })).body
  })

  const place = () =>
    api.call('POST', '/orders', {
      body: { customerId, shippingAddress: 'Dock 4', lines: [{ productId: pen.id, quantity: 3 }, { productId: ink.id, quantity: 2 }] },
    })

  test('creation prices lines from the products and computes the total', async () => {
    const res = await place()
    expect(res.status).toBe(201)
    expect(res.body).toMatchObject({ customerId, shippingAddress: 'Dock 4', status: 'PLACED', total: 8 })
    expect(res.body.lines.map((l: any) => [l.productId, l.quantity, l.unitPrice])).toEqual([
      [pen.id, 3, 1.1],
      [ink.id, 2, 2.35],
    ])
    // A later price change does not touch the order.
    await api.call('PATCH', `/products/${pen.id}`, { body: { price: 9 } })
    const again = await api.call('GET', `/orders/${res.body.id}`)
    expect(again.body).toEqual(res.body)
    await api.call('PATCH', `/products/${pen.id}`, { body: { price: 1.1 } })
  })

  test('status follows the allowed transitions; others are 409 and change nothing', async () => {
    const { id } = (await place()).body
    const move = (status: string) => api.call('POST', `/orders/${id}/status`, { body: { status } })
    expect((await move('SHIPPED')).status).toBe(409)
    expect((await move('PAYMENT_CONFIRMED')).body.status).toBe('PAYMENT_CONFIRMED')
    expect((await move('PAYMENT_CONFIRMED')).status).toBe(409)
    expect((await move('SHIPPED')).body.status).toBe('SHIPPED')
    // The address is fixed once shipped.
    expect((await api.call('PATCH', `/orders/${id}`, { body: { shippingAddress: 'elsewhere' } })).status).toBe(409)
    expect((await move('DELIVERED')).body.status).toBe('DELIVERED')
    const counts = await api.counts()
    const late = await move('CANCELLED')
    expect(late.status).toBe(409)
    expect(late.body.detail).toContain('DELIVERED to CANCELLED')
    expect(await api.counts()).toEqual(counts)
    expect((await api.call('GET', `/orders/${id}`)).body.status).toBe('DELIVERED')

    for (const path of [['CANCELLED'], ['PAYMENT_CONFIRMED', 'CANCELLED'], ['PAYMENT_CONFIRMED', 'SHIPPED', 'CANCELLED']]) {
      const order = (await place()).body
      for (const status of path) {
        expect((await api.call('POST', `/orders/${order.id}/status`, { body: { status } })).status).toBe(200)
      }
      expect((await api.call('POST', `/orders/${order.id}/status`, { body: { status: 'PLACED' } })).status).toBe(409)
    }
    expect((await api.call('POST', '/orders/999999/status', { body: { status: 'SHIPPED' } })).status).toBe(404)
  })

  test('PATCH changes the shipping address before shipping; DELETE removes the lines too', async () => {
    const { id } = (await place()).body
    const res = await api.call('PATCH', `/orders/${id}`, { body: { shippingAddress: 'Dock 5' } })
    expect(res.status).toBe(200)
    expect(res.body.shippingAddress).toBe('Dock 5')
    expect((await api.call('DELETE', `/orders/${id}`)).status).toBe(204)
    const lines = await api.rt.db().query('select 1 from order_lines where order_id = $1', [id])
    expect(lines.length).toBe(0)
  })

  test('missing customer or product is a 422 naming the field, and changes nothing', async () => {
    const counts = await api.counts()
    const res = await api.call('POST', '/orders', {
      body: { customerId: 987654, shippingAddress: 'x', lines: [{ productId: pen.id, quantity: 1 }, { productId: 555555, quantity: 1 }] },
    })
    expect(res.status).toBe(422)
    expect(res.body.errors).toEqual([
      { path: 'customerId', message: 'customer 987654 does not exist' },
      { path: 'lines.1.productId', message: 'product 555555 does not exist' },
    ])
    expect(await api.counts()).toEqual(counts)
  })

  test('deleting a customer or product that orders refer to is a 409', async () => {
    await place()
    const counts = await api.counts()
    expect((await api.call('DELETE', `/customers/${customerId}`)).status).toBe(409)
    expect((await api.call('DELETE', `/products/${pen.id}`)).status).toBe(409)
    expect(await api.counts()).toEqual(counts)
  })

  test('lists carry the lines of each order and page by cursor', async () => {
    const first = await api.call('GET', '/orders?limit=2')
    expect(first.body.items.length).toBe(2)
    expect(first.body.items[0].lines.length).toBe(2)
    const second = await api.call('GET', `/orders?limit=2&cursor=${first.body.nextCursor}`)
    expect(second.body.items[0].id).toBeGreaterThan(first.body.items[1].id)
  })
})
