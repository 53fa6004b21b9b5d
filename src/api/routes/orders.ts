// /orders: orders with their lines. Creation prices lines from the products at that moment and computes the total;
// status moves only along the allowed transitions (POST /orders/:id/status), everything in one write transaction.
import { Hono } from 'hono'
import type { Db } from '../../clients/postgres.ts'
import listSql from '../../../sql/api/orders-list.sql' with { type: 'text' }
import getSql from '../../../sql/api/orders-get.sql' with { type: 'text' }
import lockSql from '../../../sql/api/orders-lock.sql' with { type: 'text' }
import linesOfSql from '../../../sql/api/order-lines-of.sql' with { type: 'text' }
import lockCustomerSql from '../../../sql/api/orders-lock-customer.sql' with { type: 'text' }
import lockProductsSql from '../../../sql/api/orders-lock-products.sql' with { type: 'text' }
import insertSql from '../../../sql/api/orders-insert.sql' with { type: 'text' }
import insertLinesSql from '../../../sql/api/order-lines-insert.sql' with { type: 'text' }
import setStatusSql from '../../../sql/api/orders-set-status.sql' with { type: 'text' }
import setAddressSql from '../../../sql/api/orders-set-address.sql' with { type: 'text' }
import deleteSql from '../../../sql/api/orders-delete.sql' with { type: 'text' }
import { IdParam, ListQuery, OrderCreate, OrderPatch, StatusChange, type ORDER_STATUSES } from '../schemas.ts'
import { jsonBody, params, query } from '../middleware/validate.ts'
import { requireDeleteReason } from '../middleware/delete-reason.ts'
import { idPage } from '../cursor.ts'
import { ApiError, notFound, rethrowDb } from '../problem.ts'
import { inWriteTransaction } from '../write.ts'
import type { AppDeps, AppEnv } from '../env.ts'

type Status = (typeof ORDER_STATUSES)[number]

/** PLACED → PAYMENT_CONFIRMED → SHIPPED → DELIVERED; CANCELLED from any state before DELIVERED. */
export const TRANSITIONS: Record<Status, readonly Status[]> = {
  PLACED: ['PAYMENT_CONFIRMED', 'CANCELLED'],
  PAYMENT_CONFIRMED: ['SHIPPED', 'CANCELLED'],
  SHIPPED: ['DELIVERED', 'CANCELLED'],
  DELIVERED: [],
  CANCELLED: [],
}

/** The shipping address can change until the order ships. */
const ADDRESS_EDITABLE: readonly Status[] = ['PLACED', 'PAYMENT_CONFIRMED']

interface OrderRow {
  id: number
  customer_id: number
  shipping_address: string
  status: Status
  total: string
  created_at: Date
  updated_at: Date
}
interface LineRow {
  id: number
  order_id: number
  product_id: number
  quantity: number
  unit_price: string
}

const toOrder = (r: OrderRow, lines: LineRow[]) => ({
  id: r.id,
  customerId: r.customer_id,
  shippingAddress: r.shipping_address,
  status: r.status,
  total: Number(r.total),
  lines: lines
    .filter((l) => l.order_id === r.id)
    .map((l) => ({ id: l.id, productId: l.product_id, quantity: l.quantity, unitPrice: Number(l.unit_price) })),
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
})

async function withLines(db: Db, rows: OrderRow[]) {
  if (rows.length === 0) return []
  const lines = await db.query<LineRow>(linesOfSql, [JSON.stringify(rows.map((r) => r.id))])
  return rows.map((r) => toOrder(r, lines))
}

export function orderRoutes(deps: AppDeps) {
  const max = deps.config.http.maxPageSize
  return new Hono<AppEnv>()
    .get('/', query(ListQuery), async (c) => {
      const page = await idPage<OrderRow>(deps.db(), listSql, c.req.valid('query'), max)
      return c.json({ items: await withLines(deps.db(), page.items), nextCursor: page.nextCursor })
    })
    .get('/:id', params(IdParam), async (c) => {
      const rows = await deps.db().query<OrderRow>(getSql, [c.req.valid('param').id])
      const [order] = await withLines(deps.db(), rows)
      if (!order) throw notFound('order')
      return c.json(order)
    })
    .post('/', jsonBody(OrderCreate), async (c) => {
      const b = c.req.valid('json')
      const lines = JSON.stringify(b.lines)
      const order = await inWriteTransaction(deps, c, async (tx) => {
        // Checked (and locked) before inserting, so a missing reference is a 422 naming the field.
        const customer = await tx.query(lockCustomerSql, [b.customerId])
        const found = new Set((await tx.query<{ id: number }>(lockProductsSql, [JSON.stringify(b.lines.map((l) => l.productId))])).map((r) => r.id))
        const missing = [
          ...(customer.length === 0 ? [{ path: 'customerId', message: `customer ${b.customerId} does not exist` }] : []),
          ...b.lines.flatMap((l, i) => (found.has(l.productId) ? [] : [{ path: `lines.${i}.productId`, message: `product ${l.productId} does not exist` }])),
        ]
        if (missing.length) throw new ApiError(422, 'missing-reference', 'the order refers to resources that do not exist', missing)
        const [row] = await tx.query<OrderRow>(insertSql, [b.customerId, b.shippingAddress, lines])
        const inserted = await tx.query<LineRow>(insertLinesSql, [row!.id, lines])
        return toOrder(row!, inserted)
      }).catch(rethrowDb('missing-reference'))
      return c.json(order, 201, { Location: `/orders/${order.id}` })
    })
    .patch('/:id', params(IdParam), jsonBody(OrderPatch), async (c) => {
      const id = c.req.valid('param').id
      const { shippingAddress } = c.req.valid('json')
      const rows = await inWriteTransaction(deps, c, async (tx) => {
        const [current] = await tx.query<OrderRow>(lockSql, [id])
        if (!current) throw notFound('order')
        if (shippingAddress === undefined || shippingAddress === current.shipping_address) return tx.query<OrderRow>(getSql, [id])
        if (!ADDRESS_EDITABLE.includes(current.status)) {
          throw new ApiError(409, 'order-state', `the shipping address cannot change once the order is ${current.status}`)
        }
        return tx.query<OrderRow>(setAddressSql, [id, shippingAddress])
      })
      return c.json((await withLines(deps.db(), rows))[0]!)
    })
    .post('/:id/status', params(IdParam), jsonBody(StatusChange), async (c) => {
      const id = c.req.valid('param').id
      const { status } = c.req.valid('json')
      const rows = await inWriteTransaction(deps, c, async (tx) => {
        const [current] = await tx.query<OrderRow>(lockSql, [id])
        if (!current) throw notFound('order')
        if (!TRANSITIONS[current.status].includes(status)) {
          throw new ApiError(409, 'forbidden-transition', `an order cannot go from ${current.status} to ${status}`)
        }
        return tx.query<OrderRow>(setStatusSql, [id, status])
      })
      return c.json((await withLines(deps.db(), rows))[0]!)
    })
    .delete('/:id', params(IdParam), requireDeleteReason(deps.config), async (c) => {
      const [row] = await inWriteTransaction(deps, c, (tx) => tx.query(deleteSql, [c.req.valid('param').id])).catch(
        rethrowDb('still-referenced'),
      )
      if (!row) throw notFound('order')
      return c.body(null, 204)
    })
}
