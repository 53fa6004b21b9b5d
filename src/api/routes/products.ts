// /products: CRUD over the products table; prices are numeric(12,2) in PostgreSQL and JSON numbers here.
import { Hono } from 'hono'
import listSql from '../../../sql/api/products-list.sql' with { type: 'text' }
import getSql from '../../../sql/api/products-get.sql' with { type: 'text' }
import insertSql from '../../../sql/api/products-insert.sql' with { type: 'text' }
import patchSql from '../../../sql/api/products-patch.sql' with { type: 'text' }
import deleteSql from '../../../sql/api/products-delete.sql' with { type: 'text' }
import { IdParam, ListQuery, ProductCreate, ProductPatch } from '../schemas.ts'
import { jsonBody, params, query } from '../middleware/validate.ts'
import { requireDeleteReason } from '../middleware/delete-reason.ts'
import { idPage } from '../cursor.ts'
import { notFound, rethrowDb } from '../problem.ts'
import { inWriteTransaction } from '../write.ts'
import type { AppDeps, AppEnv } from '../env.ts'

interface ProductRow {
  id: number
  category: string
  name: string
  /** numeric arrives as text. */
  price: string
}

const toProduct = (r: ProductRow) => ({ id: r.id, category: r.category, name: r.name, price: Number(r.price) })

export function productRoutes(deps: AppDeps) {
  const max = deps.config.http.maxPageSize
  return new Hono<AppEnv>()
    .get('/', query(ListQuery), async (c) => {
      const page = await idPage<ProductRow>(deps.db(), listSql, c.req.valid('query'), max)
      return c.json({ items: page.items.map(toProduct), nextCursor: page.nextCursor })
    })
    .get('/:id', params(IdParam), async (c) => {
      const [row] = await deps.db().query<ProductRow>(getSql, [c.req.valid('param').id])
      if (!row) throw notFound('product')
      return c.json(toProduct(row))
    })
    .post('/', jsonBody(ProductCreate), async (c) => {
      const b = c.req.valid('json')
      const [row] = await inWriteTransaction(deps, c, (tx) =>
        tx.query<ProductRow>(insertSql, [b.category, b.name, String(b.price)]),
      ).catch(rethrowDb('missing-reference'))
      const product = toProduct(row!)
      return c.json(product, 201, { Location: `/products/${product.id}` })
    })
    .patch('/:id', params(IdParam), jsonBody(ProductPatch), async (c) => {
      const patch = JSON.stringify(c.req.valid('json'))
      const [row] = await inWriteTransaction(deps, c, (tx) =>
        tx.query<ProductRow>(patchSql, [c.req.valid('param').id, patch]),
      ).catch(rethrowDb('missing-reference'))
      if (!row) throw notFound('product')
      return c.json(toProduct(row))
    })
    .delete('/:id', params(IdParam), requireDeleteReason(deps.config), async (c) => {
      const [row] = await inWriteTransaction(deps, c, (tx) => tx.query(deleteSql, [c.req.valid('param').id])).catch(
        rethrowDb('still-referenced'),
      )
      if (!row) throw notFound('product')
      return c.body(null, 204)
    })
}
