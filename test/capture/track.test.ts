// The capture trigger: envelope, who/why, nothing for no-ops or rollbacks, track/untrack, masks, composite keys.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { TestEnv } from '../support/env.ts'
import { ROOT } from '../support/env.ts'
import { track, untrack } from '../../src/capture/track.ts'
import { aggregateName } from '../../src/tables.ts'
import { UsageError } from '../../src/errors.ts'
import { migratedEnv, storedEvents, withSettings } from './support.ts'

let env: TestEnv
beforeAll(async () => {
  env = await migratedEnv((c) => {
    c.capture.tables.secrets = { exclude: ['internal'], mask: ['pin'], incidental: [], bookkeeping: [] }
  })
})
afterAll(() => env.cleanup())

const db = () => env.rt.db()

test('insert, update, delete produce complete envelopes in the event store and the outbox', async () => {
  await withSettings(db(), { actor: 'alice', reason: 'ticket 77', correlation_id: 'req-1', causation_id: 'cmd-1', source: 'api' }, async (tx) => {
    await tx.query(`insert into products (category, name, price) values ('pens', 'Blue pen', 1.50)`)
    await tx.query(`update products set price = 1.75 where name = 'Blue pen'`)
  })
  await db().query(`delete from products where name = 'Blue pen'`)
  const events = await storedEvents(db(), 'products')
  expect(events.map((e) => [e.type, e.op, e.version, e.tx.index])).toEqual([
    ['ProductCreated', 'c', 1, 0],
    ['ProductUpdated', 'u', 2, 1],
    ['ProductDeleted', 'd', 3, 0],
  ])
  const [created, updated, deleted] = events as [(typeof events)[0], (typeof events)[0], (typeof events)[0]]
  expect(created.aggregate).toEqual({ type: 'products', id: String(created.after!.id) })
  expect(created.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  expect(created.occurredAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/)
  expect(created.tx.id).toBe(updated.tx.id)
  expect(deleted.tx.id).not.toBe(created.tx.id)
  expect(created).toMatchObject({ actor: { id: 'alice', source: 'api' }, reason: 'ticket 77', correlationId: 'req-1', causationId: 'cmd-1' })
  expect(created.before).toBeNull()
  expect(created.after).toMatchObject({ category: 'pens', name: 'Blue pen', price: 1.5 })
  expect(updated.changes).toEqual([{ path: 'price', before: 1.5, after: 1.75 }])
  expect(updated.before).toMatchObject({ price: 1.5 })
  expect(updated.after).toMatchObject({ price: 1.75 })
  // no settings: the database user, source sql, nulls
  expect(deleted).toMatchObject({ actor: { id: 'cdc', source: 'sql' }, reason: null, correlationId: null, causationId: null, after: null })
  expect(deleted.before).toMatchObject({ price: 1.75 })
  // the outbox holds each event's id in order (the relay reads the envelope from the event store)
  const outbox = await db().query<{ event_id: string; tx_id: string }>(
    `select o.event_id::text, o.tx_id::text from cdc.outbox o join cdc.event_store e on e.id = o.event_id
      where e.aggregate_type = 'products' order by o.seq`,
  )
  expect(outbox.map((r) => r.event_id)).toEqual(events.map((e) => e.id))
  expect(outbox.map((r) => r.tx_id)).toEqual(events.map((e) => e.tx.id))
})

test('empty settings count as unset', async () => {
  await withSettings(db(), { actor: '', reason: '', source: '' }, (tx) =>
    tx.query(`insert into products (category, name, price) values ('pens', 'Empty', 1)`),
  )
  const [event] = (await storedEvents(db(), 'products')).filter((e) => e.after?.name === 'Empty')
  expect(event).toMatchObject({ actor: { id: 'cdc', source: 'sql' }, reason: null })
})

test('an update that changes nothing and a rolled-back transaction produce no event', async () => {
  const [p] = await db().query<{ id: number }>(`insert into products (category, name, price) values ('ink', 'Same', 3) returning id`)
  await db().query(`update products set price = 3, name = 'Same' where id = $1`, [p!.id])
  await db()
    .begin(async (tx) => {
      await tx.query(`update products set price = 4 where id = $1`, [p!.id])
      await tx.query(`insert into products (category, name, price) values ('ink', 'Ghost', 1)`)
      throw new Error('roll back')
    })
    .catch(() => {})
  const events = (await storedEvents(db(), 'products')).filter((e) => e.aggregate.id === String(p!.id) || e.after?.name === 'Ghost')
  expect(events.map((e) => e.type)).toEqual(['ProductCreated'])
  const [outbox] = await db().query<{ n: number }>(
    `select count(*)::int as n from cdc.outbox o join cdc.event_store e on e.id = o.event_id
      where e.aggregate_id = $1 and e.aggregate_type = 'products'`,
    [String(p!.id)],
  )
  expect(outbox!.n).toBe(1)
})

test('a table without a primary key is refused with a clear message, by the CLI with exit code 2', async () => {
  await db().query('create table public.nopk (a int)')
  await expect(track(env.rt, 'nopk')).rejects.toThrow(/has no primary key/)
  await expect(track(env.rt, 'nopk')).rejects.toBeInstanceOf(UsageError)
  await expect(track(env.rt, 'missing_table')).rejects.toThrow(/does not exist/)
  const proc = Bun.spawnSync(['bun', `${ROOT}src/cli.ts`, 'track', 'nopk'], {
    cwd: ROOT,
    env: { ...process.env, CDC_POSTGRES_URL: env.config.postgres.url, CDC_LOG_LEVEL: 'error' },
  })
  expect(proc.exitCode).toBe(2)
  expect(proc.stderr.toString()).toContain('table nopk has no primary key and no replica identity index')
})

test('track twice is harmless; untrack stops capture and keeps history; columns added later appear', async () => {
  await db().query('create table public.notes (id int primary key, body text)')
  await track(env.rt, 'notes')
  await track(env.rt, 'notes')
  await db().query(`insert into notes values (1, 'a')`)
  await db().query('alter table notes add column tag text')
  await db().query(`update notes set tag = 'x' where id = 1`)
  await untrack(env.rt, 'notes')
  await untrack(env.rt, 'notes')
  await db().query(`update notes set body = 'b' where id = 1`)
  const events = await storedEvents(db(), 'notes')
  expect(events.map((e) => [e.type, e.version])).toEqual([
    ['NoteCreated', 1],
    ['NoteUpdated', 2],
  ])
  expect(events[1]!.changes).toEqual([{ path: 'tag', before: null, after: 'x' }])
  expect(events[1]!.after).toEqual({ id: 1, body: 'a', tag: 'x' })
  // tracked again later: the version sequence continues
  await track(env.rt, 'notes')
  await db().query(`delete from notes where id = 1`)
  await db().query(`insert into notes values (1, 'again', null)`)
  expect((await storedEvents(db(), 'notes')).map((e) => [e.type, e.version])).toEqual([
    ['NoteCreated', 1],
    ['NoteUpdated', 2],
    ['NoteDeleted', 3],
    ['NoteCreated', 4],
  ])
})

test('excluded columns are absent, masked ones "***" in images and changes, and a masked change still counts', async () => {
  await db().query('create table public.secrets (id int primary key, owner text, pin text, internal text)')
  await track(env.rt, 'secrets')
  await db().query(`insert into secrets values (1, 'ann', 'pin-secret-one', 'x')`)
  await db().query(`update secrets set pin = 'pin-secret-two' where id = 1`)
  await db().query(`update secrets set internal = 'y' where id = 1`)
  const events = await storedEvents(db(), 'secrets')
  expect(events.map((e) => e.type)).toEqual(['SecretCreated', 'SecretUpdated'])
  expect(events[0]!.after).toEqual({ id: 1, owner: 'ann', pin: '***' })
  expect(events[1]!.changes).toEqual([{ path: 'pin', before: '***', after: '***' }])
  const [raw] = await db().query<{ n: number }>(`select count(*)::int as n from cdc.event_store where payload::text like '%pin-secret%'`)
  expect(raw!.n).toBe(0)
  await expect(untrack(env.rt, 'secrets')).resolves.toEqual({ table: 'secrets', tracked: false })
})

test('a composite primary key is encoded as escaped parts joined by ":"', async () => {
  await db().query('create table public.pairs (a text, b int, v text, primary key (a, b))')
  await track(env.rt, 'pairs')
  await db().query(`insert into pairs values ('x:y%', 7, 'v')`)
  const [event] = await storedEvents(db(), 'pairs')
  expect(event!.aggregate.id).toBe('x%3Ay%25:7')
})

test('columns without an equality operator (json, point) are compared as text', async () => {
  await db().query(`create table public.docs (id int primary key, body json, spot point, tags text[], mood_level numeric)`)
  await track(env.rt, 'docs')
  await db().query(`insert into docs values (1, '{"a":1}', '(1,2)', '{x}', 1)`)
  await db().query(`update docs set body = '{"a":1}', spot = '(1,2)' where id = 1`)
  await db().query(`update docs set body = '{"a":2}', tags = '{x,y}' where id = 1`)
  const events = await storedEvents(db(), 'docs')
  expect(events.map((e) => e.type)).toEqual(['DocCreated', 'DocUpdated'])
  expect(events[1]!.changes.map((c) => c.path)).toEqual(['body', 'tags'])
})

test('TRUNCATE of a tracked table is refused', async () => {
  const error = await db()
    .query('truncate products cascade')
    .then(() => null, (e: Error) => e)
  expect(error?.message).toMatch(/TRUNCATE of tracked table public.products is refused/)
})

test('aggregate names are the singular PascalCase of the table', () => {
  expect(['customers', 'order_lines', 'categories', 'addresses', 'statuses', 'news'].map((name) => aggregateName({ schema: 'public', name }))).toEqual([
    'Customer',
    'OrderLine',
    'Category',
    'Address',
    'Status',
    'New',
  ])
})
