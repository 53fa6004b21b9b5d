// A platform team points cdc at its own database: tables that use the demo's names, a schema of its own, a quoted
// mixed-case table with a composite key, a partitioned table and one keyed by a replica identity index. `cdc migrate`
// touches nothing of theirs; each table is tracked (by the CLI, a separate process) while the roles of `cdc all` run
// here, and a change with who/why reaches its history within seconds, without restarting anything. Untrack stops
// capture and keeps the history. Bad names and untrackable tables exit 2 and change nothing.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { createTestEnv, eventually, ROOT, type TestEnv } from '../support/env.ts'
import { migrate } from '../../src/capture/migrate.ts'
import { track, untrack } from '../../src/capture/track.ts'
import { UsageError } from '../../src/errors.ts'
import { startRoles } from '../../src/commands/long-running.ts'
import type { Role } from '../../src/runtime.ts'
import type { Db } from '../../src/clients/postgres.ts'

let env: TestEnv
let roles: Role[] = []
let base: URL
const db = (): Db => env.rt.db()

const TEAM_SCHEMA = `
  create table public.customers (customer_no text primary key, full_name text not null, tier int not null default 1);
  insert into public.customers values ('C-1', 'Existing Co', 2);
  create table public.widgets (id int primary key, name text);
  create schema app;
  create table app.orders (id bigint primary key, customer_no text not null, total numeric(12,2) not null);
  create table app."LineItems" ("OrderId" bigint, "Line:No" int, sku text not null, primary key ("OrderId", "Line:No"));
  create table app.events_log (id bigint not null, day date not null, note text, primary key (id, day)) partition by range (day);
  create table app.events_log_2025 partition of app.events_log for values from ('2025-01-01') to ('2026-01-01');
  create table app.events_log_2026 partition of app.events_log for values from ('2026-01-01') to ('2027-01-01');
  create table app.accounts (email text not null, name text);
  create unique index accounts_email on app.accounts (email);
  alter table app.accounts replica identity using index accounts_email;
  create table app.nokey (x int);
  create unlogged table app.scratch (id int primary key);
  create view app.order_totals as select customer_no, sum(total) from app.orders group by 1;
  create foreign data wrapper team_fdw;
  create server team_server foreign data wrapper team_fdw;
  create foreign table app.remote (id int) server team_server;
`

/** What the team owns, as the catalog describes it: every object outside schema cdc (and the system schemas). */
async function teamObjects() {
  return db().query(
    `select n.nspname, c.relname, c.relkind, pg_get_userbyid(c.relowner) as owner,
            (select string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' order by a.attnum)
               from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as columns,
            (select string_agg(t.tgname, ', ' order by t.tgname) from pg_trigger t where t.tgrelid = c.oid and not t.tgisinternal) as triggers
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname not in ('cdc', 'pg_catalog', 'information_schema', 'pg_toast') order by 1, 2`,
  )
}

async function cli(...args: string[]) {
  const proc = Bun.spawn(['bun', `${ROOT}src/cli.ts`, ...args], {
    cwd: ROOT,
    env: { ...process.env, CDC_POSTGRES_URL: env.config.postgres.url, CDC_KAFKA_BROKERS: env.config.kafka.brokers.join(','),
      CDC_KAFKA_TOPIC_TEMPLATE: env.config.kafka.topicTemplate, CDC_MONGO_URL: env.config.mongo.url,
      CDC_MONGO_DATABASE: env.config.mongo.database, CDC_CONSUME_GROUP_ID: env.config.consume.groupId,
      CDC_DEMO_ENABLED: 'false', CDC_LOG_LEVEL: 'error' },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { code, stdout, stderr }
}

async function get(path: string) {
  const res = await fetch(new URL(path, base))
  return { status: res.status, body: (await res.json()) as any }
}

/** One change as a team's application makes it: who and why set locally in its transaction. */
async function change(actor: string, reason: string, statement: string) {
  await db().begin(async (tx) => {
    await tx.query(`select set_config('cdc.actor', $1, true), set_config('cdc.reason', $2, true)`, [actor, reason])
    await tx.query(statement)
  })
}

async function historyOf(table: string, id: string, count: number) {
  return eventually(async () => {
    const res = await get(`/history/${encodeURIComponent(table)}/${encodeURIComponent(id)}`)
    return res.status === 200 && res.body.items.length >= count ? res.body.items : undefined
  }, 30_000, 250)
}

let before: unknown
beforeAll(async () => {
  env = await createTestEnv((c) => {
    c.http.port = 0
  }, { demo: false })
  await db().script(TEAM_SCHEMA)
  before = await teamObjects()
})
afterAll(async () => {
  for (const role of roles.reverse()) await role.stop().catch(() => {})
  await env?.cleanup()
})

test('migrate creates only schema cdc: the team\'s tables (one named customers) stay as they were', async () => {
  const result = await migrate(env.rt)
  expect(result.tracked).toEqual([])
  expect(await teamObjects()).toEqual(before as never)
  const [cdc] = await db().query<{ n: number }>(`select count(*)::int as n from pg_namespace where nspname = 'cdc'`)
  expect(cdc!.n).toBe(1)
  // and it is repeatable
  expect((await migrate(env.rt)).applied).toEqual([])
})

test('the roles of `cdc all` start with nothing tracked', async () => {
  roles = await startRoles(env.rt, ['relay', 'consume', 'serve'])
  base = (roles.find((r) => r.name === 'serve') as Role & { url: URL }).url
  expect((await get('/history/app.orders/1')).status).toBe(404)
  // the demo is off: no demo routes, and the OpenAPI document describes only the generic ones
  expect((await get('/customers')).status).toBe(404)
  const doc = (await get('/openapi.json')).body
  expect(Object.keys(doc.paths)).toContain('/history/{table}/{id}')
  expect(Object.keys(doc.paths).some((p) => p.startsWith('/customers') || p.startsWith('/orders'))).toBe(false)
})

test('each table is tracked while the roles run, and a change with who/why is in its history within seconds', async () => {
  const tracked = await cli('track', 'app.orders', 'customers', 'app."LineItems"', 'app.events_log', 'app.accounts')
  expect(tracked.stderr).toBe('')
  expect(tracked.code).toBe(0)
  expect(tracked.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([
    { table: 'app.orders', tracked: true, key: ['id'], keySource: 'primary key' },
    { table: 'customers', tracked: true, key: ['customer_no'], keySource: 'primary key' },
    { table: 'app."LineItems"', tracked: true, key: ['OrderId', 'Line:No'], keySource: 'primary key' },
    { table: 'app.events_log', tracked: true, key: ['id', 'day'], keySource: 'primary key' },
    { table: 'app.accounts', tracked: true, key: ['email'], keySource: 'replica identity' },
  ])

  await change('alice', 'ticket 1', `insert into app.orders values (1, 'C-1', 99.50)`)
  await change('bob', 'tier review', `update public.customers set tier = 3 where customer_no = 'C-1'`)
  await change('carol', 'split line', `insert into app."LineItems" values (1, 7, 'SKU:9')`)
  await change('dave', 'audit', `insert into app.events_log values (5, '2025-06-01', 'old'), (6, '2026-02-01', 'new')`)
  await change('erin', 'signup', `insert into app.accounts values ('e@example.com', 'Erin')`)

  const orders = await historyOf('app.orders', '1', 1)
  expect(orders[0]).toMatchObject({ type: 'OrderCreated', op: 'c', aggregate: { type: 'app.orders', id: '1' }, actor: { id: 'alice', source: 'sql' }, reason: 'ticket 1' })
  expect(orders[0].after).toEqual({ id: 1, customer_no: 'C-1', total: 99.5 })

  const customers = await historyOf('customers', 'C-1', 1)
  expect(customers[0]).toMatchObject({ type: 'CustomerUpdated', actor: { id: 'bob' }, reason: 'tier review', changes: [{ path: 'tier', before: 2, after: 3 }] })

  // the composite key in the envelope's stable encoding (':' inside a part is %3A), the name URL-encoded in the path
  const lines = await historyOf('app."LineItems"', '1:7', 1)
  expect(lines[0]).toMatchObject({ type: 'LineItemCreated', aggregate: { type: 'app."LineItems"', id: '1:7' }, actor: { id: 'carol' } })
  expect(lines[0].after).toEqual({ OrderId: 1, 'Line:No': 7, sku: 'SKU:9' })
  // the unquoted spelling and the alias route find it too
  expect((await get('/history/app.LineItems/1:7')).body.items).toHaveLength(1)
  expect((await get(`/${encodeURIComponent('app."LineItems"')}/1:7/history`)).body.items).toHaveLength(1)

  // both partitions captured under the parent's name
  const early = await historyOf('app.events_log', '5:2025-06-01', 1)
  const late = await historyOf('app.events_log', '6:2026-02-01', 1)
  expect([early[0].aggregate.type, late[0].aggregate.type, late[0].actor.id]).toEqual(['app.events_log', 'app.events_log', 'dave'])

  const accounts = await historyOf('app.accounts', 'e@example.com', 1)
  expect(accounts[0]).toMatchObject({ type: 'AccountCreated', reason: 'signup' })

  // point in time and audit search work by qualified name
  const at = await get(`/history/app.orders/1/at?ts=${encodeURIComponent(new Date().toISOString())}`)
  expect(at.body).toMatchObject({ version: 1, deleted: false, row: { total: 99.5 } })
  const audit = await get('/history?table=app.orders&actor=alice')
  expect(audit.body.items.map((e: any) => e.aggregate.id)).toEqual(['1'])

  // the console finds the new tables
  const page = await fetch(new URL('/ui', base)).then((r) => r.text())
  expect(page).toContain('app.&quot;LineItems&quot;')
  expect(page).toContain('app.events_log')

  // cdc status lists them with their events
  const status = await cli('status', '--json')
  expect(status.code).toBe(0)
  const rows = JSON.parse(status.stdout).tables as any[]
  expect(rows.map((r) => [r.table, r.active, r.mode, r.events])).toEqual([
    ['app."LineItems"', true, 'outbox', 1],
    ['app.accounts', true, 'outbox', 1],
    ['app.events_log', true, 'outbox', 2],
    ['app.orders', true, 'outbox', 1],
    ['customers', true, 'outbox', 1],
  ])
  for (const r of rows) expect(r.lastEventAt).toMatch(/^\d{4}-/)
})

test('snapshot of a tracked table emits its existing rows, resumable', async () => {
  await db().query(`insert into app.orders select g, 'C-1', g from generate_series(2, 30) g`)
  const snap = await cli('snapshot', 'app.orders', '--batch-size', '7')
  expect(snap.code).toBe(0)
  expect(JSON.parse(snap.stdout)).toMatchObject({ table: 'app.orders', rows: 30, done: true })
  const [n] = await db().query<{ n: number }>(`select count(*)::int as n from cdc.event_store where aggregate_type = 'app.orders' and type = 'OrderSnapshotted'`)
  expect(n!.n).toBe(30)
  const again = await cli('snapshot', 'app.orders')
  expect(JSON.parse(again.stdout)).toMatchObject({ rows: 0, done: true })
})

test('untrack stops capture and keeps the history', async () => {
  const res = await cli('untrack', 'app.orders')
  expect(res.code).toBe(0)
  await change('alice', 'after untrack', `update app.orders set total = 1 where id = 1`)
  const [n] = await db().query<{ n: number }>(
    `select count(*)::int as n from cdc.event_store where aggregate_type = 'app.orders' and payload->>'reason' = 'after untrack'`,
  )
  expect(n!.n).toBe(0)
  const history = await get('/history/app.orders/1')
  expect(history.status).toBe(200)
  expect(history.body.items[0].reason).toBe('ticket 1')
  const [triggers] = await db().query<{ n: number }>(`select count(*)::int as n from pg_trigger where tgrelid = 'app.orders'::regclass and not tgisinternal`)
  expect(triggers!.n).toBe(0)
})

test('bad names and untrackable tables exit 2 with the reason, and change nothing', async () => {
  const state = async () => ({
    tracked: await db().query(`select aggregate_type, active from cdc.tracked order by 1`),
    objects: await teamObjects(),
    functions: await db().query(`select proname from pg_proc where pronamespace = 'cdc'::regnamespace order by 1`),
  })
  const was = await state()
  const cases: [string, RegExp][] = [
    ['app.widgets; drop table public.widgets', /is not a table name/],
    ['widgets"; drop table public.widgets; --', /is not a table name/],
    ['app.orders.extra', /database name is not allowed/],
    ['', /is not a table name/],
    ['app.nokey', /no primary key and no replica identity index/],
    ['app.scratch', /is unlogged/],
    ['app.order_totals', /is a view/],
    ['app.remote', /is a foreign table/],
    ['app.events_log_2025', /is a partition of app.events_log/],
    ['pg_catalog.pg_class', /system schema/],
    ['cdc.outbox', /system schema/],
    ['app.missing', /does not exist/],
  ]
  // Through the CLI (exit code 2) for a few, in-process (the same UsageError the CLI turns into exit 2) for all.
  for (const [name, why] of [cases[0]!, cases[4]!, cases[6]!]) {
    const res = await cli('track', name)
    expect({ name, code: res.code }).toEqual({ name, code: 2 })
    expect(res.stderr).toMatch(why)
  }
  for (const [name, why] of cases) {
    const error = await track(env.rt, name).then(() => null, (e: Error) => e)
    expect(error).toBeInstanceOf(UsageError)
    expect(error!.message).toMatch(why)
  }
  expect(await state()).toEqual(was)
  expect((await cli('untrack', 'app.widgets; drop table x')).code).toBe(2)
  await expect(untrack(env.rt, 'app.never_tracked')).rejects.toBeInstanceOf(UsageError)
  expect(await state()).toEqual(was)
})

test('a tracked table the team drops is untracked by the next migrate, its history kept', async () => {
  await db().query('drop table app.accounts')
  await migrate(env.rt)
  const [row] = await db().query<{ active: boolean }>(`select active from cdc.tracked where aggregate_type = 'app.accounts'`)
  expect(row!.active).toBe(false)
  expect((await get('/history/app.accounts/e@example.com')).body.items).toHaveLength(1)
})
