// A catalogue of bad requests: each gets a clean 4xx problem document (never a 500 or a stack trace), names the
// offending field where there is one, and changes nothing (row counts and the event store stay as they were).
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { createApiEnv, type ApiEnv, type CallOptions } from './support.ts'

let api: ApiEnv
let customerId: number
let productId: number
let orderId: number
beforeAll(async () => {
  api = await createApiEnv()
  customerId = (await api.call('POST', '/customers', { body: { name: 'C', email: 'c@example.com' } })).body.id
  productId = (await api.call('POST', '/products', { body: { category: 'k', name: 'P', price: 1 } })).body.id
  orderId = (await api.call('POST', '/orders', { body: { customerId, shippingAddress: 'a', lines: [{ productId, quantity: 1 }] } })).body.id
})
afterAll(() => api.cleanup())

interface Case {
  name: string
  method: string
  path: string | (() => string)
  options: CallOptions
  status: number
  /** A field path the problem must name. */
  field?: string
}

const customer = { name: 'N', email: 'n@example.com' }
const json = { 'content-type': 'application/json' }
const order = () => ({ customerId, shippingAddress: 'x', lines: [{ productId, quantity: 1 }] })

const cases: Case[] = [
  { name: 'malformed JSON', method: 'POST', path: '/customers', options: { raw: '{"name": "x",', headers: json }, status: 400 },
  { name: 'empty body', method: 'POST', path: '/customers', options: { raw: '', headers: json }, status: 400 },
  { name: 'non-UTF-8 body', method: 'POST', path: '/customers', options: { raw: new Uint8Array([0x7b, 0x22, 0x6e, 0x61, 0x6d, 0x65, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d]), headers: json }, status: 400 },
  { name: 'text/plain body', method: 'POST', path: '/customers', options: { raw: JSON.stringify(customer), headers: { 'content-type': 'text/plain' } }, status: 415 },
  { name: 'form body', method: 'POST', path: '/customers', options: { raw: 'name=x&email=y', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, status: 415 },
  { name: 'no content type', method: 'POST', path: '/customers', options: { raw: JSON.stringify(customer) }, status: 415 },
  { name: 'array instead of object', method: 'POST', path: '/customers', options: { body: [customer] }, status: 400 },
  { name: 'JSON null', method: 'POST', path: '/customers', options: { raw: 'null', headers: json }, status: 400 },
  { name: 'missing required fields', method: 'POST', path: '/customers', options: { body: {} }, status: 400, field: 'email' },
  { name: 'wrong type', method: 'POST', path: '/customers', options: { body: { name: 42, email: 'w@example.com' } }, status: 400, field: 'name' },
  { name: 'unknown field', method: 'POST', path: '/customers', options: { body: { ...customer, isAdmin: true } }, status: 400, field: 'isAdmin' },
  { name: 'invalid email', method: 'POST', path: '/customers', options: { body: { name: 'x', email: 'not-an-email' } }, status: 400, field: 'email' },
  { name: 'blank name', method: 'POST', path: '/customers', options: { body: { name: '   ', email: 'b@example.com' } }, status: 400, field: 'name' },
  { name: 'too long name', method: 'POST', path: '/customers', options: { body: { name: 'x'.repeat(201), email: 'l@example.com' } }, status: 400, field: 'name' },
  { name: 'NUL character', method: 'POST', path: '/customers', options: { body: { name: 'a\u0000b', email: 'z@example.com' } }, status: 400, field: 'name' },
  { name: 'lone surrogate', method: 'POST', path: '/customers', options: { raw: '{"name":"\\ud800","email":"s@example.com"}', headers: json }, status: 400, field: 'name' },
  { name: 'bad phone', method: 'POST', path: '/customers', options: { body: { ...customer, phone: 'call me; drop table' } }, status: 400, field: 'phone' },
  { name: 'body over http.bodyLimit', method: 'POST', path: '/customers', options: { body: { name: 'x'.repeat(1024 * 1024 + 10), email: 'big@example.com' } }, status: 413 },
  { name: 'patch sets a required field to null', method: 'PATCH', path: () => `/customers/${customerId}`, options: { body: { name: null } }, status: 400, field: 'name' },
  { name: 'patch unknown field', method: 'PATCH', path: () => `/customers/${customerId}`, options: { body: { id: 5 } }, status: 400, field: 'id' },
  { name: 'negative price', method: 'POST', path: '/products', options: { body: { category: 'c', name: 'n', price: -1 } }, status: 400, field: 'price' },
  { name: 'huge price', method: 'POST', path: '/products', options: { body: { category: 'c', name: 'n', price: 1e300 } }, status: 400, field: 'price' },
  { name: 'price with 3 decimals', method: 'POST', path: '/products', options: { body: { category: 'c', name: 'n', price: 1.234 } }, status: 400, field: 'price' },
  { name: 'price as string', method: 'POST', path: '/products', options: { body: { category: 'c', name: 'n', price: '1.00' } }, status: 400, field: 'price' },
  { name: 'zero quantity', method: 'POST', path: '/orders', options: { body: { ...order(), lines: [{ productId: 1, quantity: 0 }] } }, status: 400, field: 'lines.0.quantity' },
  { name: 'fractional quantity', method: 'POST', path: '/orders', options: { body: { ...order(), lines: [{ productId: 1, quantity: 1.5 }] } }, status: 400, field: 'lines.0.quantity' },
  { name: 'huge quantity', method: 'POST', path: '/orders', options: { body: { ...order(), lines: [{ productId: 1, quantity: 1e12 }] } }, status: 400, field: 'lines.0.quantity' },
  { name: 'id beyond 2^53', method: 'POST', path: '/orders', options: { body: { ...order(), customerId: 2 ** 63 } }, status: 400, field: 'customerId' },
  { name: 'negative id', method: 'POST', path: '/orders', options: { body: { ...order(), customerId: -1 } }, status: 400, field: 'customerId' },
  { name: 'no lines', method: 'POST', path: '/orders', options: { body: { ...order(), lines: [] } }, status: 400, field: 'lines' },
  { name: 'line with unknown field', method: 'POST', path: '/orders', options: { body: { ...order(), lines: [{ productId: 1, quantity: 1, unitPrice: 0 }] } }, status: 400, field: 'lines.0.unitPrice' },
  { name: 'client-chosen total', method: 'POST', path: '/orders', options: { body: { ...order(), total: 0 } }, status: 400, field: 'total' },
  { name: 'unknown status', method: 'POST', path: () => `/orders/${orderId}/status`, options: { body: { status: 'LOST' } }, status: 400, field: 'status' },
  { name: 'status in lower case', method: 'POST', path: () => `/orders/${orderId}/status`, options: { body: { status: 'shipped' } }, status: 400, field: 'status' },
  { name: 'path id with SQL', method: 'GET', path: "/customers/1;drop table customers", options: {}, status: 400, field: 'path.id' },
  { name: 'path id quoted', method: 'DELETE', path: "/customers/1'%20or%20'1'='1", options: {}, status: 400, field: 'path.id' },
  { name: 'path id too large', method: 'PATCH', path: '/customers/99999999999999999999', options: { body: { name: 'x' } }, status: 400, field: 'path.id' },
  { name: 'path id zero', method: 'GET', path: '/orders/0', options: {}, status: 400, field: 'path.id' },
  { name: 'limit zero', method: 'GET', path: '/customers?limit=0', options: {}, status: 400, field: 'query.limit' },
  { name: 'limit negative', method: 'GET', path: '/customers?limit=-5', options: {}, status: 400, field: 'query.limit' },
  { name: 'limit with SQL', method: 'GET', path: '/customers?limit=1%3Bdelete%20from%20customers', options: {}, status: 400, field: 'query.limit' },
  { name: 'limit repeated', method: 'GET', path: '/customers?limit=1&limit=2', options: {}, status: 400, field: 'query.limit' },
  { name: 'unknown query parameter', method: 'GET', path: '/customers?sort=name', options: {}, status: 400, field: 'query.sort' },
  { name: 'forged cursor', method: 'GET', path: '/customers?cursor=eyJhZnRlciI6Ii0xIG9yIDE9MSJ9', options: {}, status: 400, field: 'query.cursor' },
  { name: 'garbage cursor', method: 'GET', path: '/products?cursor=%27%3B--', options: {}, status: 400, field: 'query.cursor' },
  { name: 'X-Actor too long', method: 'POST', path: '/customers', options: { body: { name: 'a', email: 'actor@example.com' }, headers: { 'x-actor': 'a'.repeat(201) } }, status: 400, field: 'headers.x-actor' },
  { name: 'X-Causation-Id with a space', method: 'POST', path: '/customers', options: { body: { name: 'a', email: 'cause1@example.com' }, headers: { 'x-causation-id': 'cmd 1' } }, status: 400, field: 'headers.x-causation-id' },
  { name: 'X-Causation-Id too long', method: 'POST', path: '/customers', options: { body: { name: 'a', email: 'cause2@example.com' }, headers: { 'x-causation-id': 'c'.repeat(201) } }, status: 400, field: 'headers.x-causation-id' },
  { name: 'X-Causation-Id empty', method: 'PATCH', path: '/customers/1', options: { body: { name: 'a' }, headers: { 'x-causation-id': '' } }, status: 400, field: 'headers.x-causation-id' },
  { name: 'unknown route', method: 'GET', path: '/customerz', options: {}, status: 404 },
  { name: 'unsupported method', method: 'PUT', path: '/customers/1', options: { body: customer }, status: 404 },
  { name: 'missing resource', method: 'GET', path: '/products/424242', options: {}, status: 404 },
  // Cursors are opaque, but a forged one must be a 400 however it is built (1e300 and 2^63 used to reach SQL: 500).
  ...forgedCursors(),
  // Out-of-range values in query strings: 400, never a query error.
  { name: 'limit beyond 9 digits', method: 'GET', path: '/customers?limit=99999999999999999999', options: {}, status: 400, field: 'query.limit' },
  { name: 'from with month 13', method: 'GET', path: '/history/customers/1?from=2026-13-01', options: {}, status: 400 },
  { name: 'from on 31 February', method: 'GET', path: '/history/customers/1?from=2026-02-31T00:00:00Z', options: {}, status: 400 },
  { name: 'at with year 10000', method: 'GET', path: '/history/customers/1/at?ts=10000-01-01T00:00:00Z', options: {}, status: 400 },
  { name: 'at with hour 25', method: 'GET', path: '/history/customers/1/at?ts=2026-01-01T25:00:00Z', options: {}, status: 400 },
  { name: 'audit with offset +99:99', method: 'GET', path: '/history?from=2026-01-01T00:00:00%2B99:99', options: {}, status: 400 },
]

/** Every list that takes a cursor, with cursors a client could forge. */
function forgedCursors(): Case[] {
  const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
  const lists: [string, string, (n: unknown) => unknown][] = [
    ['/customers', 'customers', (n) => ({ after: n })],
    ['/products', 'products', (n) => ({ after: n })],
    ['/orders', 'orders', (n) => ({ after: n })],
    ['/history/customers/1', 'history', (n) => ({ v: n })],
    ['/history', 'audit', (n) => ({ t: n, id: 'x' })],
  ]
  const values: [string, string][] = [
    ['1e300', b64('{"after":1e300,"v":1e300}')],
    ['2^63', b64('{"after":9223372036854775808,"v":9223372036854775808}')],
    ['-1', b64({ after: -1, v: -1 })],
    ['1.5', b64({ after: 1.5, v: 1.5 })],
    ['NaN text', b64('{"after":NaN}')],
    ['not base64', '!!!'],
    ['padding and spaces', 'eyJhZnRlciI6MX0= '],
    ['JSON array', b64([1])],
    ['JSON null', b64('null')],
    ['nested object', b64({ after: { $gt: 0 }, v: { $gt: 0 }, t: { $gt: '' }, id: { $ne: null } })],
    ['500 characters', 'A'.repeat(501)],
  ]
  const out: Case[] = []
  for (const [path, label, shape] of lists) {
    for (const [name, cursor] of values) out.push({ name: `${label} cursor ${name}`, method: 'GET', path: `${path}?cursor=${encodeURIComponent(cursor)}`, options: {}, status: 400, field: 'query.cursor' })
    for (const n of [1e300, 2 ** 63, -1]) {
      out.push({ name: `${label} cursor with ${n}`, method: 'GET', path: `${path}?cursor=${b64(shape(label === 'audit' ? String(n).repeat(20) : n))}`, options: {}, status: 400, field: 'query.cursor' })
    }
  }
  return out
}

for (const c of cases) {
  test(`${c.name} → ${c.status}, nothing changed`, async () => {
    const before = await api.counts()
    const res = await api.call(c.method, typeof c.path === 'function' ? c.path() : c.path, c.options)
    expect(res.status).toBe(c.status)
    expect(res.headers.get('content-type')).toBe('application/problem+json')
    expect(res.body).toMatchObject({ status: c.status, type: expect.any(String), title: expect.any(String), detail: expect.any(String) })
    expect(JSON.stringify(res.body)).not.toMatch(/ at |\.ts:|stack|postgres:\/\//)
    if (c.field) expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(c.field)
    expect(await api.counts()).toEqual(before)
  })
}

test('every invalid field is reported at once', async () => {
  const res = await api.call('POST', '/customers', { body: { name: '', email: 'x', phone: 5, extra: 1 } })
  expect(res.status).toBe(400)
  expect(res.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(['email', 'extra', 'name', 'phone'])
})

test('SQL metacharacters in valid text are stored verbatim, as data', async () => {
  const name = `Robert'); drop table customers; --`
  const res = await api.call('POST', '/customers', { body: { name, email: 'bobby@example.com', address: '$1 \\ "quoted" %s' } })
  expect(res.status).toBe(201)
  const back = await api.call('GET', `/customers/${res.body.id}`)
  expect(back.body.name).toBe(name)
  expect(back.body.address).toBe('$1 \\ "quoted" %s')
})
