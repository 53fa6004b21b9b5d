// `cdc migrate`: ordered, recorded, locked against concurrent migrators, all-or-nothing per migration; definitions
// re-applied when they change.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { createTestEnv, ROOT, type TestEnv } from '../support/env.ts'
import { applyDefinitions, applyMigrations, DEFINITIONS, DEMO_MIGRATIONS, migrate, MIGRATIONS } from '../../src/capture/migrate.ts'
import { createRuntime } from '../../src/runtime.ts'
import { createLogger } from '../../src/log.ts'

let env: TestEnv
beforeAll(async () => {
  env = await createTestEnv()
})
afterAll(() => env.cleanup())

/** The test env runs with the demo on: its migration too. */
const ALL = [...MIGRATIONS, ...DEMO_MIGRATIONS].map((m) => m.name).sort()

test('two concurrent migrators apply each migration exactly once, and a rerun is a no-op', async () => {
  const other = createRuntime(env.config, createLogger({}, () => {}))
  try {
    const [a, b] = await Promise.all([migrate(env.rt), migrate(other)])
    expect([...a.applied, ...b.applied].sort()).toEqual(ALL)
    expect(a.tracked).toEqual(['customers', 'products', 'orders'])
  } finally {
    await other.close()
  }
  const rows = await env.rt.db().query<{ name: string }>('select name from cdc.migrations order by name')
  expect(rows.map((r) => r.name)).toEqual(ALL)
  const again = await migrate(env.rt)
  expect(again.applied).toEqual([])
  expect(again.defined).toEqual([])
  const triggers = await env.rt.db().query<{ n: number }>(`select count(*)::int as n from pg_trigger where tgname like 'cdc_capture_%'`)
  expect(triggers[0]!.n).toBe(3 * 4)
})

test('a failing migration leaves nothing behind and is not recorded', async () => {
  const bad = { name: '900_broken', sql: 'create table cdc.half_done (id int); select 1 / 0;' }
  await expect(applyMigrations(env.rt, [...MIGRATIONS, bad])).rejects.toThrow(/division by zero/)
  const [table] = await env.rt.db().query(`select to_regclass('cdc.half_done') as t`)
  expect(table!.t).toBeNull()
  const [recorded] = await env.rt.db().query<{ n: number }>(`select count(*)::int as n from cdc.migrations where name = '900_broken'`)
  expect(recorded!.n).toBe(0)
})

test('the CLI prints a JSON summary', async () => {
  const proc = Bun.spawn(['bun', `${ROOT}src/cli.ts`, 'migrate'], {
    cwd: ROOT,
    env: { ...process.env, CDC_POSTGRES_URL: env.config.postgres.url, CDC_LOG_LEVEL: 'error', CDC_DEMO_ENABLED: 'true' },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const out = await new Response(proc.stdout).text()
  expect(await proc.exited).toBe(0)
  expect(JSON.parse(out)).toEqual({ applied: [], defined: [], tracked: ['customers', 'products', 'orders'] })
})

test('a changed definition file is applied again, an unchanged one is not', async () => {
  const changed = DEFINITIONS.map((d) => (d.name === 'roots' ? { ...d, sql: `${d.sql}\n-- edited` } : d))
  expect(await applyDefinitions(env.rt, changed)).toEqual(['roots'])
  expect(await applyDefinitions(env.rt, changed)).toEqual([])
  expect(await applyDefinitions(env.rt, DEFINITIONS)).toEqual(['roots'])
})
