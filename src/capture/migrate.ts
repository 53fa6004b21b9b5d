// `cdc migrate` brings a database to the current layout, each step in its own transaction under the migration lock
// (concurrent migrators queue up):
// 1. the numbered migrations of sql/migrations (tables and data changes), each applied once, in order, recorded in
//    cdc.migrations, never edited (add a new file instead);
// 2. the definitions of sql/definitions (functions, generators, triggers; `create or replace` only), each re-applied
//    whenever its text changed, recorded in cdc.definitions;
// 3. capture.mode, and capture (re)generated on every tracked table, so generated functions follow the definitions.
import bootstrap from '../../sql/bootstrap.sql' with { type: 'text' }
import baseline from '../../sql/migrations/001_baseline.sql' with { type: 'text' }
import demoSchema from '../../sql/migrations/002_demo_schema.sql' with { type: 'text' }
import trackedSet from '../../sql/migrations/003_tracked_set.sql' with { type: 'text' }
import logicalTables from '../../sql/migrations/004_logical_capture.sql' with { type: 'text' }
import logicalParts from '../../sql/migrations/005_logical_parts.sql' with { type: 'text' }
import bulkCaptureRules from '../../sql/migrations/006_bulk_capture_rules.sql' with { type: 'text' }
import events from '../../sql/definitions/events.sql' with { type: 'text' }
import trackFunctions from '../../sql/definitions/track.sql' with { type: 'text' }
import roots from '../../sql/definitions/roots.sql' with { type: 'text' }
import logical from '../../sql/definitions/logical.sql' with { type: 'text' }
import legacyCleanup from '../../sql/upgrade/legacy-005.sql' with { type: 'text' }
import type { Db } from '../clients/postgres.ts'
import type { Runtime } from '../runtime.ts'
import { lockMigrations } from './lock.ts'
import { installCapture } from './track.ts'

export interface SqlFile {
  name: string
  sql: string
}

/** Every migration, in order. Applied ones are never edited: add a new file instead. */
export const MIGRATIONS: readonly SqlFile[] = [
  { name: '001_baseline', sql: baseline },
  { name: '003_tracked_set', sql: trackedSet },
  { name: '004_logical_capture', sql: logicalTables },
  { name: '005_logical_parts', sql: logicalParts },
  { name: '006_bulk_capture_rules', sql: bulkCaptureRules },
]

/** The demo application's tables in schema public: applied only with demo.enabled. */
export const DEMO_MIGRATIONS: readonly SqlFile[] = [{ name: '002_demo_schema', sql: demoSchema }]

/** Every definition file, in order (a later one may use an earlier one's functions). */
export const DEFINITIONS: readonly SqlFile[] = [
  { name: 'events', sql: events },
  { name: 'track', sql: trackFunctions },
  { name: 'roots', sql: roots },
  { name: 'logical', sql: logical },
]

/** The old numbering (until the baseline squash) and the current migrations its last state equals. */
const LEGACY = ['001_cdc_core', '002_capture_functions', '003_demo_schema', '004_capture_text_envelope', '005_capture_lean_trigger']
const LEGACY_EQUALS = ['001_baseline', '002_demo_schema']

export async function migrate(rt: Runtime): Promise<{ applied: string[]; defined: string[]; tracked: string[] }> {
  const adopted = await adoptLegacyLayout(rt)
  const applied = await applyMigrations(rt, rt.config.demo.enabled ? [...MIGRATIONS, ...DEMO_MIGRATIONS] : MIGRATIONS)
  const defined = [...adopted, ...(await applyDefinitions(rt, DEFINITIONS))]
  const tracked = await installCapture(rt)
  return { applied, defined, tracked }
}

const checksum = (sql: string) => new Bun.CryptoHasher('sha256').update(sql).digest('hex')

/** Applies the given migrations that are not recorded yet; returns their names. A failing one rolls back whole. */
export async function applyMigrations(rt: Runtime, migrations: readonly SqlFile[]): Promise<string[]> {
  const db = rt.db()
  await db.begin(async (tx) => {
    await lockMigrations(tx)
    await tx.script(bootstrap)
  })
  const applied: string[] = []
  for (const migration of migrations) {
    const sum = checksum(migration.sql)
    const done = await db.begin(async (tx) => {
      await lockMigrations(tx)
      const [row] = await tx.query<{ checksum: string }>('select checksum from cdc.migrations where name = $1', [migration.name])
      if (row) {
        if (row.checksum !== sum) rt.log.warn('applied migration differs from its file', { migration: migration.name })
        return true
      }
      await tx.script(migration.sql)
      await tx.query('insert into cdc.migrations (name, checksum) values ($1, $2)', [migration.name, sum])
      return false
    })
    if (!done) {
      applied.push(migration.name)
      rt.log.info('migration applied', { migration: migration.name })
    }
  }
  return applied
}

/** (Re)applies the definition files whose checksum differs from the recorded one; returns their names. */
export async function applyDefinitions(rt: Runtime, definitions: readonly SqlFile[]): Promise<string[]> {
  const defined: string[] = []
  for (const definition of definitions) {
    const changed = await rt.db().begin(async (tx) => {
      await lockMigrations(tx)
      return defineIn(tx, definition)
    })
    if (changed) {
      defined.push(definition.name)
      rt.log.info('definitions applied', { definitions: definition.name })
    }
  }
  return defined
}

async function defineIn(tx: Db, definition: SqlFile): Promise<boolean> {
  const sum = checksum(definition.sql)
  const [row] = await tx.query<{ checksum: string }>('select checksum from cdc.definitions where name = $1', [definition.name])
  if (row?.checksum === sum) return false
  await tx.script(definition.sql)
  await tx.query(
    `insert into cdc.definitions (name, checksum) values ($1, $2)
     on conflict (name) do update set checksum = excluded.checksum, applied_at = now()`,
    [definition.name, sum],
  )
  return true
}

/**
 * A database migrated by the old numbering is at the state of the baseline: record it as such, replace its functions
 * by the current definitions and drop the ones they no longer have, in one transaction (so a concurrent ALTER TABLE
 * never finds capture half-replaced). Returns the definitions applied. Capture is regenerated by migrate afterwards.
 */
async function adoptLegacyLayout(rt: Runtime): Promise<string[]> {
  return rt.db().begin(async (tx) => {
    await lockMigrations(tx)
    await tx.script(bootstrap)
    const rows = await tx.query<{ name: string }>('select name from cdc.migrations where name = any($1::text[])', [LEGACY])
    if (rows.length === 0) return []
    if (rows.length < LEGACY.length) {
      const missing = LEGACY.filter((name) => !rows.some((r) => r.name === name))
      throw new Error(`this database was migrated by an older cdc without ${missing.join(', ')}: migrate it with that version first`)
    }
    await tx.query('delete from cdc.migrations where name = any($1::text[])', [LEGACY])
    for (const migration of [...MIGRATIONS, ...DEMO_MIGRATIONS].filter((m) => LEGACY_EQUALS.includes(m.name))) {
      await tx.query('insert into cdc.migrations (name, checksum) values ($1, $2)', [migration.name, checksum(migration.sql)])
    }
    const defined: string[] = []
    for (const definition of DEFINITIONS) if (await defineIn(tx, definition)) defined.push(definition.name)
    await tx.script(legacyCleanup)
    rt.log.info('database of the old migration numbering adopted', { migrations: LEGACY_EQUALS })
    return defined
  })
}
