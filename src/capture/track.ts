// `cdc track` / `cdc untrack`: install or remove the generated capture trigger of a table (sql/definitions/track.sql).
import { isDbError, type Db } from '../clients/postgres.ts'
import { UsageError } from '../commands/command.ts'
import type { Runtime } from '../runtime.ts'
import { lockMigrations } from './lock.ts'
import { ensureLogicalSlot } from './slot.ts'
import { captureSpec, rootSpec } from './spec.ts'

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/

/** SQLSTATEs cdc.track() raises for bad input: missing table, no primary key, bad column or option. */
const REFUSALS = new Set(['42P01', '55000', '42703', '22023'])

export async function track(rt: Runtime, table: string): Promise<{ table: string; tracked: boolean }> {
  checkName(table)
  await ensureSlot(rt)
  await rt.db().begin(async (tx) => {
    await lockMigrations(tx)
    await trackIn(rt, tx, table)
  })
  rt.log.info('table tracked', { table, mode: rt.config.capture.mode })
  return { table, tracked: true }
}

export async function untrack(rt: Runtime, table: string): Promise<{ table: string; tracked: boolean }> {
  checkName(table)
  await rt.db().begin(async (tx) => {
    await lockMigrations(tx)
    await tx.query('select cdc.untrack($1)', [table]).catch(explain)
  })
  rt.log.info('table untracked', { table })
  return { table, tracked: false }
}

/** Applies capture.mode and (re)installs capture on every table of capture.tracked plus those tracked before. */
export async function installCapture(rt: Runtime): Promise<string[]> {
  await ensureSlot(rt)
  return rt.db().begin(async (tx) => {
    await lockMigrations(tx)
    await tx.query(`update cdc.settings set value = $1 where key = 'mode'`, [rt.config.capture.mode])
    const before = await tx.query<{ table_name: string }>('select table_name from cdc.tracked order by table_name')
    const tables = [...new Set([...rt.config.capture.tracked, ...before.map((r) => r.table_name)])]
    for (const table of tables) {
      checkName(table)
      await trackIn(rt, tx, table)
    }
    for (const root of Object.keys(rt.config.capture.roots)) {
      await tx.query('select cdc.track_root($1, $2::text::jsonb)', [root, JSON.stringify(rootSpec(rt.config, root))]).catch(explain)
    }
    return tables
  })
}

async function trackIn(rt: Runtime, tx: Db, table: string) {
  await tx.query('select cdc.track($1, $2::text::jsonb)', [table, JSON.stringify(captureSpec(rt.config, table))]).catch(explain)
}

/** Logical mode: the relay's slot first, so every change after tracking is decoded (a lost slot: the relay says so). */
async function ensureSlot(rt: Runtime) {
  if (rt.config.capture.mode === 'logical') await ensureLogicalSlot(rt.db(), rt.config.relay.slot, rt.config.relay.publication, rt.log)
}

function checkName(table: string) {
  if (!IDENTIFIER.test(table)) throw new UsageError(`${JSON.stringify(table)} is not a lower-case table name`)
}

function explain(error: unknown): never {
  if (isDbError(error) && error.code && REFUSALS.has(error.code)) throw new UsageError(error.message)
  if (isDbError(error, '3F000') || isDbError(error, '42883')) throw new UsageError('capture is not installed: run `cdc migrate` first')
  throw error
}
