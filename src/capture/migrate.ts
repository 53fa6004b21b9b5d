// `cdc migrate`: applies the numbered migrations of sql/migrations in order, each in its own transaction and
// recorded in cdc.migrations, under an advisory lock so concurrent migrators queue up; then (re)installs capture.
import bootstrap from '../../sql/bootstrap.sql' with { type: 'text' }
import core from '../../sql/migrations/001_cdc_core.sql' with { type: 'text' }
import captureFunctions from '../../sql/migrations/002_capture_functions.sql' with { type: 'text' }
import demoSchema from '../../sql/migrations/003_demo_schema.sql' with { type: 'text' }
import textEnvelope from '../../sql/migrations/004_capture_text_envelope.sql' with { type: 'text' }
import leanTrigger from '../../sql/migrations/005_capture_lean_trigger.sql' with { type: 'text' }
import logicalCapture from '../../sql/migrations/006_capture_logical.sql' with { type: 'text' }
import type { Db } from '../clients/postgres.ts'
import type { Runtime } from '../runtime.ts'
import { installCapture } from './track.ts'

/** Every migration, in order. Applied ones are never edited: add a new file instead. */
export const MIGRATIONS: readonly { name: string; sql: string }[] = [
  { name: '001_cdc_core', sql: core },
  { name: '002_capture_functions', sql: captureFunctions },
  { name: '003_demo_schema', sql: demoSchema },
  { name: '004_capture_text_envelope', sql: textEnvelope },
  { name: '005_capture_lean_trigger', sql: leanTrigger },
  { name: '006_capture_logical', sql: logicalCapture },
]

/** Transaction-level advisory lock key shared by every migrator (and by track/untrack). */
export const MIGRATION_LOCK = 0x63646301

export async function lockMigrations(tx: Db) {
  await tx.query('select pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
}

export async function migrate(rt: Runtime): Promise<{ applied: string[]; tracked: string[] }> {
  const applied = await applyMigrations(rt, MIGRATIONS)
  const tracked = await installCapture(rt)
  return { applied, tracked }
}

/** Applies the given migrations that are not recorded yet; returns their names. A failing one rolls back whole. */
export async function applyMigrations(rt: Runtime, migrations: readonly { name: string; sql: string }[]): Promise<string[]> {
  const db = rt.db()
  await db.begin(async (tx) => {
    await lockMigrations(tx)
    await tx.script(bootstrap)
  })
  const applied: string[] = []
  for (const migration of migrations) {
    const checksum = new Bun.CryptoHasher('sha256').update(migration.sql).digest('hex')
    const done = await db.begin(async (tx) => {
      await lockMigrations(tx)
      const [row] = await tx.query<{ checksum: string }>('select checksum from cdc.migrations where name = $1', [migration.name])
      if (row) {
        if (row.checksum !== checksum) rt.log.warn('applied migration differs from its file', { migration: migration.name })
        return true
      }
      await tx.script(migration.sql)
      await tx.query('insert into cdc.migrations (name, checksum) values ($1, $2)', [migration.name, checksum])
      return false
    })
    if (!done) {
      applied.push(migration.name)
      rt.log.info('migration applied', { migration: migration.name })
    }
  }
  return applied
}
