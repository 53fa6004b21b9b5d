// `cdc track` / `cdc untrack`: install or remove the generated capture trigger of a table (sql/definitions/track.sql)
// and keep the tracked set in schema cdc (cdc.tracked), which every running role follows. Names are parsed with SQL's
// rules here and reach SQL only as parameters (schema, table); the generator quotes them with %I.
import { isDbError, type Db } from '../clients/postgres.ts'
import { UsageError } from '../errors.ts'
import type { Runtime } from '../runtime.ts'
import { parseTableName, qualifiedName, TableNameError, type TableName } from '../tables.ts'
import { lockMigrations } from './lock.ts'
import { ensureLogicalSlot } from './slot.ts'
import { captureSpec, rootSpec } from './spec.ts'

/**
 * SQLSTATEs cdc.track() raises for what cannot be tracked: missing table (42P01), no key / unlogged / temporary
 * (55000), a view, foreign table or partition (42809), a system schema (0A000), bad column or option (42703, 22023).
 */
const REFUSALS = new Set(['42P01', '55000', '42809', '0A000', '42703', '22023'])

export interface TrackResult {
  table: string
  tracked: boolean
  key?: string[]
  keySource?: string
}

/** A table name from the command line or config, or exit code 2 saying why it is not one. */
export function tableArg(input: string): TableName {
  try {
    return parseTableName(input)
  } catch (error) {
    if (error instanceof TableNameError) throw new UsageError(error.message)
    throw error
  }
}

export async function track(rt: Runtime, input: string): Promise<TrackResult> {
  const table = tableArg(input)
  await ensureSlot(rt)
  const result = await rt.db().begin(async (tx) => {
    await lockMigrations(tx)
    await setMode(rt, tx)
    return trackIn(rt, tx, table)
  })
  rt.log.info('table tracked', { table: result.table, mode: rt.config.capture.mode, key: result.key })
  return result
}

export async function untrack(rt: Runtime, input: string): Promise<TrackResult> {
  const table = tableArg(input)
  const [row] = await rt.db().begin(async (tx) => {
    await lockMigrations(tx)
    return tx.query<{ untracked: boolean | null }>('select cdc.untrack($1, $2) as untracked', [table.schema, table.name]).catch(explain)
  })
  const name = qualifiedName(table)
  // null: never tracked (a typo, most likely); false: untracked before, which is fine.
  if (row?.untracked === null || row === undefined) throw new UsageError(`table ${name} is not tracked`)
  rt.log.info('table untracked', { table: name })
  return { table: name, tracked: false }
}

/** Applies capture.mode and (re)installs capture on every table of capture.tracked plus those tracked now. */
export async function installCapture(rt: Runtime): Promise<string[]> {
  await ensureSlot(rt)
  return rt.db().begin(async (tx) => {
    await lockMigrations(tx)
    await setMode(rt, tx)
    const active = await tx.query<{ schema_name: string; table_name: string; state: 'present' | 'renamed' | 'dropped' }>(
      `select schema_name, table_name,
              case when to_regclass(format('%I.%I', schema_name, table_name)) is not null then 'present'
                   when exists (select 1 from pg_class c where c.oid = relid) then 'renamed' else 'dropped' end as state
         from cdc.tracked where active order by aggregate_type`,
    )
    const configured = rt.config.capture.tracked.map(parseTableName)
    const tables = new Map<string, TableName>()
    for (const t of configured) tables.set(qualifiedName(t), t)
    for (const r of active) {
      const t = { schema: r.schema_name, name: r.table_name }
      const name = qualifiedName(t)
      if (tables.has(name)) continue
      if (r.state === 'present') tables.set(name, t)
      // A table dropped since it was tracked: nothing left to capture; its history stays. A renamed one keeps its
      // triggers (events under the old name) until it is tracked by its new name.
      else if (r.state === 'dropped') {
        await tx.query('select cdc.untrack($1, $2)', [t.schema, t.name]).catch(explain)
        rt.log.warn('a tracked table no longer exists; untracked it (its history stays)', { table: name })
      } else rt.log.warn('a tracked table was renamed; track it by its new name', { table: name })
    }
    for (const table of tables.values()) await trackIn(rt, tx, table)
    // roots that are not tracked tables themselves (tracked ones got theirs with their capture)
    for (const root of Object.keys(rt.config.capture.roots)) if (!tables.has(root)) await trackRoot(rt, tx, root)
    return [...tables.keys()]
  })
}

async function setMode(rt: Runtime, tx: Db) {
  await tx.query(`update cdc.settings set value = $1 where key = 'mode'`, [rt.config.capture.mode]).catch(explain)
}

/** Logical mode: the relay's slot first, so every change after tracking is decoded (a lost slot: the relay says so). */
async function ensureSlot(rt: Runtime) {
  if (rt.config.capture.mode === 'logical') await ensureLogicalSlot(rt.db(), rt.config.relay.slot, rt.config.relay.publication, rt.log)
}

async function trackIn(rt: Runtime, tx: Db, table: TableName): Promise<TrackResult> {
  const [row] = await tx
    .query<{ result: { table: string; key: string[]; keySource: string } }>('select cdc.track($1, $2, $3::text::jsonb) as result', [
      table.schema,
      table.name,
      JSON.stringify(captureSpec(rt.config, table)),
    ])
    .catch(explain)
  // a root's events are published by its commit-time fold: its triggers go in with its capture, never apart
  if (table.schema === 'public' && Object.hasOwn(rt.config.capture.roots, table.name)) await trackRoot(rt, tx, table.name)
  return { table: row!.result.table, tracked: true, key: row!.result.key, keySource: row!.result.keySource }
}

async function trackRoot(rt: Runtime, tx: Db, root: string) {
  await tx.query('select cdc.track_root($1, $2::text::jsonb)', [root, JSON.stringify(rootSpec(rt.config, root))]).catch(explain)
}

function explain(error: unknown): never {
  if (isDbError(error) && error.code && REFUSALS.has(error.code)) {
    const hint = (error as { hint?: string }).hint
    throw new UsageError(hint ? `${error.message} (${hint})` : error.message)
  }
  if (isDbError(error, '3F000') || isDbError(error, '42883')) throw new UsageError('capture is not installed: run `cdc migrate` first')
  throw error
}
