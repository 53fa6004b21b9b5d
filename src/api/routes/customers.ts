// /customers: CRUD over the customers table; writes carry who/why (write.ts) so the history knows them.
import { Hono } from 'hono'
import listSql from '../../../sql/api/customers-list.sql' with { type: 'text' }
import getSql from '../../../sql/api/customers-get.sql' with { type: 'text' }
import insertSql from '../../../sql/api/customers-insert.sql' with { type: 'text' }
import patchSql from '../../../sql/api/customers-patch.sql' with { type: 'text' }
import deleteSql from '../../../sql/api/customers-delete.sql' with { type: 'text' }
import { CustomerCreate, CustomerPatch, IdParam, ListQuery } from '../schemas.ts'
import { jsonBody, params, query } from '../middleware/validate.ts'
import { idPage } from '../cursor.ts'
import { notFound, rethrowDb } from '../problem.ts'
import { inWriteTransaction } from '../write.ts'
import { requireDeleteReason } from '../middleware/delete-reason.ts'
import type { AppDeps, AppEnv } from '../env.ts'

interface CustomerRow {
  id: number
  name: string
  email: string
  address: string | null
  phone: string | null
  created_at: Date
  updated_at: Date
}

const toCustomer = (r: CustomerRow) => ({
  id: r.id,
  name: r.name,
  email: r.email,
  address: r.address,
  phone: r.phone,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
})

export function customerRoutes(deps: AppDeps) {
  const max = deps.config.http.maxPageSize
  return new Hono<AppEnv>()
    .get('/', query(ListQuery), async (c) => {
      const page = await idPage<CustomerRow>(deps.db(), listSql, c.req.valid('query'), max)
      return c.json({ items: page.items.map(toCustomer), nextCursor: page.nextCursor })
    })
    .get('/:id', params(IdParam), async (c) => {
      const [row] = await deps.db().query<CustomerRow>(getSql, [c.req.valid('param').id])
      if (!row) throw notFound('customer')
      return c.json(toCustomer(row))
    })
    .post('/', jsonBody(CustomerCreate), async (c) => {
      const b = c.req.valid('json')
      const [row] = await inWriteTransaction(deps, c, (tx) =>
        tx.query<CustomerRow>(insertSql, [b.name, b.email, b.address ?? null, b.phone ?? null]),
      ).catch(rethrowDb('missing-reference'))
      const customer = toCustomer(row!)
      return c.json(customer, 201, { Location: `/customers/${customer.id}` })
    })
    .patch('/:id', params(IdParam), jsonBody(CustomerPatch), async (c) => {
      const patch = JSON.stringify(c.req.valid('json'))
      const [row] = await inWriteTransaction(deps, c, (tx) =>
        tx.query<CustomerRow>(patchSql, [c.req.valid('param').id, patch]),
      ).catch(rethrowDb('missing-reference'))
      if (!row) throw notFound('customer')
      return c.json(toCustomer(row))
    })
    .delete('/:id', params(IdParam), requireDeleteReason(deps.config), async (c) => {
      const [row] = await inWriteTransaction(deps, c, (tx) => tx.query(deleteSql, [c.req.valid('param').id])).catch(
        rethrowDb('still-referenced'),
      )
      if (!row) throw notFound('customer')
      return c.body(null, 204)
    })
}
