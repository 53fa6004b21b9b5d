// A database migrated by the old numbering (test/fixtures/legacy-migrations: 001_cdc_core … 005_capture_lean_trigger,
// kept only for this test) migrates to the baseline + definitions layout with its data and tracked tables intact,
// ends up with the same functions as a fresh database, and its capture triggers are regenerated.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { readdirSync } from 'node:fs'
import { createTestEnv, ROOT, type TestEnv } from '../support/env.ts'
import { applyMigrations, DEFINITIONS, DEMO_MIGRATIONS, migrate, MIGRATIONS } from '../../src/capture/migrate.ts'
import { captureSpec, rootSpec } from '../../src/capture/spec.ts'
import type { Db } from '../../src/clients/postgres.ts'
import { storedEvents, withSettings } from './support.ts'

const FIXTURES = `${ROOT}test/fixtures/legacy-migrations/`
const legacy = await Promise.all(
  readdirSync(FIXTURES)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map(async (f) => ({ name: f.replace(/\.sql$/, ''), sql: await Bun.file(FIXTURES + f).text() })),
)

let old: TestEnv
let fresh: TestEnv
beforeAll(async () => {
  ;[old, fresh] = await Promise.all([createTestEnv(), createTestEnv()])
})
afterAll(() => Promise.all([old?.cleanup(), fresh?.cleanup()]))

/** Functions of schema cdc (name, arguments, settings, body), the table columns, indexes and triggers of the tracked tables. */
async function layout(db: Db) {
  const functions = await db.query(
    `select p.proname, pg_get_function_identity_arguments(p.oid) as args, p.proconfig, p.prosrc
       from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'cdc' order by 1, 2`,
  )
  const columns = await db.query(
    `select table_schema, table_name, column_name, data_type, is_nullable, column_default, is_identity
       from information_schema.columns where table_schema in ('cdc', 'public') order by 1, 2, ordinal_position`,
  )
  const indexes = await db.query(`select schemaname, indexname, indexdef from pg_indexes where schemaname in ('cdc', 'public') order by 1, 2`)
  const triggers = await db.query(
    `select c.relname, t.tgname, pg_get_triggerdef(t.oid) as def from pg_trigger t join pg_class c on c.oid = t.tgrelid
      where not t.tgisinternal order by 1, 2`,
  )
  const eventTriggers = await db.query(`select evtname, evtevent, evtfoid::regproc::text as fn from pg_event_trigger order by 1`)
  return { functions, columns, indexes, triggers, eventTriggers }
}

test('a database at the old 005 migrates to the new layout with its data, and matches a fresh one', async () => {
  const db = old.rt.db()
  expect(await applyMigrations(old.rt, legacy)).toEqual(legacy.map((m) => m.name))
  // the old functions install capture (as the old `cdc migrate` called them), and write history
  for (const table of old.config.capture.tracked) {
    await db.query('select cdc.track($1, $2::text::jsonb)', [table, JSON.stringify(captureSpec(old.config, { schema: 'public', name: table }))])
  }
  for (const root of Object.keys(old.config.capture.roots)) {
    await db.query('select cdc.track_root($1, $2::text::jsonb)', [root, JSON.stringify(rootSpec(old.config, root))])
  }
  await withSettings(db, { actor: 'alice' }, async (tx) => {
    await tx.query(`insert into customers (name, email) values ('Ada', 'ada@example.com')`)
    await tx.query(`select cdc.emit('customers', '1', 'CustomerNoted', '{"note": "before"}'::jsonb)`)
  })
  const before = await storedEvents(db)
  expect(before.map((e) => [e.type, e.version])).toEqual([
    ['CustomerCreated', 1],
    ['CustomerNoted', 2],
  ])

  const result = await migrate(old.rt)
  // the old numbering equals 001_baseline + 002_demo_schema; only migrations added since then are applied
  expect(result.applied).toEqual(['003_tracked_set', '004_logical_capture', '005_logical_parts', '006_bulk_capture_rules'])
  expect(result.defined).toEqual(DEFINITIONS.map((d) => d.name))
  expect(result.tracked).toEqual(['customers', 'products', 'orders'])
  const recorded = await db.query<{ name: string }>('select name from cdc.migrations order by name')
  expect(recorded.map((r) => r.name)).toEqual([...MIGRATIONS, ...DEMO_MIGRATIONS].map((m) => m.name).sort())

  // data intact, outbox rows still queued, and capture goes on in the same version sequence
  expect(await storedEvents(db)).toEqual(before)
  const [queued] = await db.query<{ n: number }>('select count(*)::int as n from cdc.outbox')
  expect(queued!.n).toBe(2)
  await db.query(`update customers set phone = '555' where id = 1`)
  const after = await storedEvents(db)
  expect(after.map((e) => [e.type, e.version])).toEqual([
    ['CustomerCreated', 1],
    ['CustomerNoted', 2],
    ['CustomerUpdated', 3],
  ])

  // the same functions, tables, indexes and triggers as a database built by the new layout
  await migrate(fresh.rt)
  expect(await layout(db)).toEqual(await layout(fresh.rt.db()))
  expect((await migrate(old.rt)).defined).toEqual([])
})

test('a database with only part of the old numbering is refused with a clear error, untouched', async () => {
  const partial = await createTestEnv()
  try {
    await applyMigrations(partial.rt, legacy.slice(0, 3))
    await expect(migrate(partial.rt)).rejects.toThrow(/migrated by an older cdc without 004_capture_text_envelope, 005_capture_lean_trigger/)
    const rows = await partial.rt.db().query<{ name: string }>('select name from cdc.migrations order by name')
    expect(rows.map((r) => r.name)).toEqual(legacy.slice(0, 3).map((m) => m.name))
  } finally {
    await partial.cleanup()
  }
})
