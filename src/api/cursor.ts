// Opaque page cursors: base64url JSON of the last item's sort key. Clients pass them back unchanged; anything else
// they send is a 400, never a query error.
import * as v from 'valibot'
import type { Db } from '../clients/postgres.ts'
import { ApiError } from './problem.ts'

export function encodeCursor(key: unknown): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url')
}

export function decodeCursor<S extends v.GenericSchema>(schema: S, cursor: string | undefined): v.InferOutput<S> | undefined {
  if (cursor === undefined) return undefined
  let value: unknown
  try {
    if (!/^[A-Za-z0-9_-]*$/.test(cursor)) throw new Error('not base64url')
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    value = undefined
  }
  const result = v.safeParse(schema, value)
  if (!result.success) throw new ApiError(400, 'validation', 'invalid cursor', [{ path: 'query.cursor', message: 'not a cursor this API issued' }])
  return result.output
}

/** Page size from `limit`, capped at http.maxPageSize. */
export function pageSize(limit: number | undefined, max: number, fallback = 50): number {
  return Math.min(limit ?? Math.min(fallback, max), max)
}

/** Items fetched with one extra row tell whether another page exists. */
export function pageOf<T>(rows: T[], size: number, keyOf: (last: T) => unknown): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, size)
  const last = items.at(-1)
  return { items, nextCursor: rows.length > size && last !== undefined ? encodeCursor(keyOf(last)) : null }
}

/** A non-negative integer a cursor may carry: within 2^53 (1e300 or 2^63 would pass v.integer() and overflow a bigint). */
export const CursorInt = v.pipe(v.number(), v.safeInteger(), v.minValue(0))

export const IdCursor = v.strictObject({ after: CursorInt })

/** One page of a table listed by id (keyset): `sql` takes $1 = the last id seen, $2 = rows to fetch. */
export async function idPage<R extends { id: number }>(
  db: Db,
  sql: string,
  q: { limit?: number; cursor?: string },
  max: number,
): Promise<{ items: R[]; nextCursor: string | null }> {
  const size = pageSize(q.limit, max)
  const after = decodeCursor(IdCursor, q.cursor)?.after ?? 0
  return pageOf(await db.query<R>(sql, [after, size + 1]), size, (last) => ({ after: last.id }))
}
