// `cdc snapshot <table>`: op "r" baseline events for existing rows, in keyset batches of one transaction each.
// Each batch locks its rows (FOR UPDATE) only while it runs, so a concurrent writer's event simply follows the
// snapshot event in the aggregate's version sequence; the cursor commits with the batch, so a rerun resumes.
import { ident } from '../clients/postgres.ts'
import { UsageError } from '../errors.ts'
import type { Runtime } from '../runtime.ts'
import { qualifiedName } from '../tables.ts'
import { tableArg } from './track.ts'

export interface SnapshotOptions {
  batchSize?: number
  restart?: boolean
  progress?: boolean
}

export async function snapshot(rt: Runtime, input: string, options: SnapshotOptions = {}): Promise<{ table: string; rows: number; done: boolean }> {
  const db = rt.db()
  const name = tableArg(input)
  const [tracked] = await db
    .query<{ aggregate_type: string; snapshot_function: string; relid: number }>(
      'select aggregate_type, snapshot_function, relid from cdc.tracked where schema_name = $1 and table_name = $2 and active',
      [name.schema, name.name],
    )
    .catch(() => [])
  const shown = qualifiedName(name)
  if (!tracked) throw new UsageError(`table ${shown} is not tracked: run \`cdc track '${shown}'\` first`)
  const table = tracked.aggregate_type
  // The generated function's name comes from cdc.tracked (cdc.generated_name: lower-case letters, digits, _).
  const fn = `cdc.${ident(tracked.snapshot_function)}`
  const batchSize = options.batchSize ?? rt.config.capture.snapshotBatchSize
  if (options.restart) await db.query('delete from cdc.snapshot_cursors where table_name = $1', [table])
  const [cursor] = await db.query<{ last_key: unknown; rows: number; done: boolean }>(
    'select last_key, rows, done from cdc.snapshot_cursors where table_name = $1',
    [table],
  )
  if (cursor?.done) {
    rt.log.info('snapshot already complete (use --restart to take a new one)', { table, rows: cursor.rows })
    return { table, rows: 0, done: true }
  }
  // The planner's row estimate, summed over the partitions of a partitioned table (itself alone otherwise).
  const [estimate] = await db.query<{ n: number }>(
    'select coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint as n from pg_partition_tree($1::oid::regclass) p join pg_class c on c.oid = p.relid',
    [tracked.relid],
  )
  const progress = options.progress ? progressBar(table, estimate?.n ?? 0) : progressLog(rt, table, estimate?.n ?? 0)
  let lastKey: unknown = cursor?.last_key ?? null
  let total = cursor?.rows ?? 0
  let rows = 0
  for (;;) {
    const batch = await db.begin(async (tx) => {
      await tx.query(`select set_config('cdc.source', 'snapshot', true)`)
      const [result] = await tx.query<{ rows: number; last_key: unknown }>(`select * from ${fn}($1::text::jsonb, $2)`, [
        lastKey === null ? null : JSON.stringify(lastKey),
        batchSize,
      ])
      const count = result?.rows ?? 0
      const key = count > 0 ? result!.last_key : lastKey
      await tx.query(
        `insert into cdc.snapshot_cursors (table_name, last_key, rows, done) values ($1, $2::text::jsonb, $3, $4)
         on conflict (table_name) do update set last_key = excluded.last_key, rows = excluded.rows, done = excluded.done, updated_at = now()`,
        [table, key === null ? null : JSON.stringify(key), total + count, count < batchSize],
      )
      return { count, key }
    })
    rows += batch.count
    total += batch.count
    lastKey = batch.key
    progress?.(total)
    rt.log.debug('snapshot batch', { table, rows: batch.count, total })
    if (batch.count < batchSize) break
  }
  progress?.(total, true)
  rt.log.info('snapshot complete', { table, rows: total })
  return { table, rows, done: true }
}

/** Without a terminal: a log line at most every few seconds (rows done of the estimate). */
function progressLog(rt: Runtime, table: string, estimate: number) {
  let last = Date.now()
  return (done: number, end = false) => {
    if (end || Date.now() - last < 5000) return
    last = Date.now()
    rt.log.info('snapshot progress', { table, rows: done, estimate })
  }
}

/** A one-line progress bar on stderr (TTY only): rows done of the planner's row estimate. */
function progressBar(table: string, estimate: number) {
  return (done: number, last = false) => {
    const share = estimate > 0 ? Math.min(1, done / estimate) : last ? 1 : 0
    const width = 30
    const filled = Math.round(share * width)
    process.stderr.write(`\r${table} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.round(share * 100)}% ${done} rows${last ? '\n' : ''}`)
  }
}
