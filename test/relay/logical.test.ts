// Logical mode (capture.mode = "logical"): the relay decodes the row changes itself. kill -9 of a spawned relay while
// writers run loses nothing and replays identically (same ids, gapless versions); a transaction larger than a batch
// goes out whole; an idle pipeline does not pin WAL and the slot metrics report; TRUNCATE is refused; a dropped slot
// is a loud, stuck state, never silently re-created.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Db } from '../../src/clients/postgres.ts'
import { migrate } from '../../src/capture/migrate.ts'
import { captureSpec } from '../../src/capture/spec.ts'
import { EventHeaders } from '../../src/events.ts'
import { startRelay } from '../../src/relay/index.ts'
import { relayMetrics } from '../../src/relay/metrics.ts'
import { renderMetrics } from '../../src/metrics.ts'
import type { Role } from '../../src/runtime.ts'
import { createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { sample } from '../support/ops.ts'
import { checkDelivery, readUntil, spawnRelay, cleanupEnv, parseLsn, slotLsn, walElsewhere, type RelayProcess, type Written } from './support.ts'

const logical = (extra: (c: TestEnv['config']) => void = () => {}) =>
  createTestEnv((c) => {
    c.capture.mode = 'logical'
    c.capture.tracked = ['customers']
    c.capture.roots = {}
    c.relay.batchSize = 20
    c.relay.heartbeatMs = 300
    extra(c)
  })

/** The event store, per aggregate in version order: what Kafka must hold exactly (ids included). */
async function storedWritten(db: Db): Promise<Written> {
  const rows = await db.query<{ aggregate_id: string; id: string; version: number }>(
    `select aggregate_id, id::text, version from cdc.event_store where aggregate_type = 'customers' order by aggregate_id, version`,
  )
  const byAggregate = new Map<string, string[]>()
  for (const r of rows) {
    const ids = byAggregate.get(r.aggregate_id) ?? []
    expect(r.version).toBe(ids.length + 1)
    ids.push(r.id)
    byAggregate.set(r.aggregate_id, ids)
  }
  return { byAggregate, total: rows.length }
}

describe('crash and replay', () => {
  const procs: RelayProcess[] = []
  let env: TestEnv
  afterAll(async () => {
    for (const p of procs) await p.stop()
    await cleanupEnv(env)
  }, 30_000)

  test('kill -9 mid-stream while writers run: every change once in the event store, Kafka complete, replays identical', async () => {
    env = await logical()
    await migrate(env.rt)
    const db = env.rt.db()
    const ids = (await db.query<{ id: number }>(
      `insert into customers (name, email) select 'c' || i, 'c' || i || '@x' from generate_series(1, 12) i returning id`,
    )).map((r) => r.id)
    const committed = new Map<number, number>(ids.map((id) => [id, 1]))
    const writing = { on: true }
    // 4 writers, each owning 3 rows; every transaction updates one or two of them, with who/why
    const writers = [0, 1, 2, 3].map(async (w) => {
      const mine = ids.slice(w * 3, w * 3 + 3)
      for (let i = 0; writing.on; i++) {
        const touch = mine.filter((_, k) => (i + k) % 2 === 0)
        await db.begin(async (tx) => {
          await tx.query(`select set_config('cdc.actor', $1, true)`, [`writer${w}`])
          for (const id of touch) await tx.query(`update customers set phone = $2 where id = $1`, [id, `${w}-${i}`])
        })
        for (const id of touch) committed.set(id, committed.get(id)! + 1)
        await Bun.sleep(2)
      }
    })
    const extra = { CDC_CAPTURE_MODE: 'logical' }
    let relay = spawnRelay(env, 'wal', 'r0', extra)
    procs.push(relay)
    try {
      for (let round = 1; round <= 3; round++) {
        await eventually(async () => (await relay.log()).includes('"replication started"'), 20_000)
        await Bun.sleep(700 + Math.random() * 500)
        await relay.kill9()
        await Bun.sleep(200)
        relay = spawnRelay(env, 'wal', `r${round}`, extra)
        procs.push(relay)
      }
      writing.on = false
      await Promise.all(writers)
      const [last] = await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')
      await eventually(async () => {
        const [s] = await db.query<{ ok: boolean }>('select confirmed_flush_lsn >= $1::pg_lsn as ok from pg_replication_slots where slot_name = $2', [
          last!.lsn,
          env.config.relay.slot,
        ])
        return s?.ok
      }, 60_000, 200)
      const written = await storedWritten(db)
      // one event per committed row change: nothing lost, nothing applied twice
      for (const [id, n] of committed) expect(written.byAggregate.get(String(id))?.length).toBe(n)
      const messages = await readUntil(env, [`${env.tag}.customers`], (m) => m.length >= written.total, 60_000)
      const { problems, distinct, duplicates } = checkDelivery(messages, written)
      expect(problems).toEqual([])
      expect(distinct).toBe(written.total)
      console.log(`logical: ${written.total} events, ${duplicates} redelivered duplicates`)
      const actors = await db.query<{ n: number }>(
        `select count(*)::int as n from cdc.event_store where type <> 'CustomerCreated' and payload->'actor'->>'id' not like 'writer%'`,
      )
      expect(actors[0]!.n).toBe(0)
      await relay.stop()
    } catch (error) {
      writing.on = false
      for (const p of procs) console.error(`--- ${p.logPath}\n${(await p.log()).split('\n').slice(-30).join('\n')}`)
      throw error
    }
  }, 150_000)
})

test('kill -9 while a large transaction is published in parts: the replay resumes it, Kafka gets it once', async () => {
  const env = await logical()
  const procs: RelayProcess[] = []
  try {
    await migrate(env.rt)
    const db = env.rt.db()
    await db.query(`insert into customers (name, email) select 'c' || i, 'c' || i || '@x' from generate_series(1, 200) i`)
    const [inserted] = await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')
    const extra = { CDC_CAPTURE_MODE: 'logical' }
    let relay = spawnRelay(env, 'wal', 'big0', extra)
    procs.push(relay)
    // The inserts (themselves published in parts) are in Kafka and confirmed first: the kill below lands in the
    // updates' parts, never between a Kafka commit and its confirmation (a replay would then rightly send it again).
    await eventually(async () => (await slotLsn(env)) >= parseLsn(inserted!.lsn), 30_000)
    // 200 customers × 15 updates in one transaction: 150 parts of 20
    await db.begin(async (tx) => {
      await tx.query(`select set_config('cdc.actor', 'batch-job', true)`)
      for (let round = 1; round <= 15; round++) await tx.query(`update customers set phone = $1`, [String(round)])
    })
    await eventually(async () => (await db.query(`select 1 from cdc.logical_slots where partial_lsn is not null`)).length > 0, 60_000, 20)
    await relay.kill9()
    relay = spawnRelay(env, 'wal', 'big1', extra)
    procs.push(relay)
    const [last] = await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')
    await eventually(async () => (await slotLsn(env)) >= parseLsn(last!.lsn), 90_000, 200)
    const written = await storedWritten(db)
    expect(written.total).toBe(200 * 16)
    const messages = await readUntil(env, [`${env.tag}.customers`], (m) => m.length >= written.total, 60_000)
    const { problems, distinct, duplicates } = checkDelivery(messages, written)
    // (one comparison, so a failure shows all three) the aborted Kafka transaction's parts are invisible to
    // read_committed consumers: no duplicates
    expect({ problems: problems.slice(0, 10), distinct, duplicates }).toEqual({ problems: [], distinct: written.total, duplicates: 0 })
    await relay.stop()
  } catch (error) {
    for (const p of procs) console.error(`--- ${p.logPath}\n${(await p.log()).split('\n').slice(-30).join('\n')}`)
    throw error
  } finally {
    for (const p of procs) await p.stop()
    await cleanupEnv(env)
  }
}, 180_000)

describe('in-process relay', () => {
  let env: TestEnv
  let relay: Role | undefined
  beforeAll(async () => {
    env = await logical()
    await migrate(env.rt)
    // a table captured by a trigger (outbox mode) in the same database: not the logical relay's business
    await env.rt.db().query('create table public.notes (id int primary key, body text)')
    const spec = { ...captureSpec(env.config, { schema: 'public', name: 'notes' }), mode: 'outbox' }
    await env.rt.db().query(`select cdc.track('public', 'notes', $1::text::jsonb)`, [JSON.stringify(spec)])
    relay = await startRelay(env.rt)
  })
  afterAll(async () => {
    await relay?.stop()
    await cleanupEnv(env)
  })

  test('a transaction larger than relay.batchSize goes out whole, in one Kafka transaction', async () => {
    const db = env.rt.db()
    const before = relayMetrics.batches.get({ mode: 'logical' })
    const delays = () => sample(renderMetrics(), 'cdc_relay_commit_to_kafka_seconds_count', { mode: 'logical' }) ?? 0
    const observed = delays()
    await db.query(`insert into customers (name, email) select 'big' || i, 'big' || i || '@x' from generate_series(1, 120) i`)
    const messages = await readUntil(env, [`${env.tag}.customers`], (m) => m.filter((x) => x.headers[EventHeaders.type] === 'CustomerCreated').length >= 120)
    expect(messages.length).toBe(120)
    await eventually(async () => relayMetrics.backlog.get({ mode: 'logical' }) === 0)
    expect(relayMetrics.batches.get({ mode: 'logical' }) - before).toBe(1)
    // One source transaction, one observation of its commit → Kafka delay.
    expect(delays() - observed).toBe(1)
  }, 60_000)

  test('a transaction over ten batches is applied and published in parts, still in one Kafka transaction', async () => {
    const db = env.rt.db()
    const before = relayMetrics.batches.get({ mode: 'logical' })
    await db.begin(async (tx) => {
      await tx.query(`select set_config('cdc.actor', 'bulk-load', true)`)
      await tx.query(`insert into customers (name, email) select 'huge' || i, 'huge' || i || '@x' from generate_series(1, 700) i`)
      await tx.query(`update customers set phone = '1' where name like 'huge%'`)
    })
    const messages = await readUntil(env, [`${env.tag}.customers`], (m) => m.filter((x) => x.headers[EventHeaders.type] === 'CustomerUpdated').length >= 700)
    const huge = messages.filter((m) => JSON.parse(m.value!.toString()).actor.id === 'bulk-load')
    expect(huge.length).toBe(1400)
    expect(new Set(huge.map((m) => m.headers[EventHeaders.id])).size).toBe(1400)
    await eventually(async () => relayMetrics.backlog.get({ mode: 'logical' }) === 0)
    expect(relayMetrics.batches.get({ mode: 'logical' }) - before).toBe(1)
    const [progress] = await db.query<{ partial_lsn: string | null }>('select partial_lsn from cdc.logical_slots')
    expect(progress!.partial_lsn).toBeNull()
  }, 60_000)

  test('an idle pipeline does not hold WAL back, and the slot metrics report', async () => {
    const before = await slotLsn(env)
    const target = await walElsewhere(env)
    expect(target).toBeGreaterThan(before)
    await eventually(async () => (await slotLsn(env)) >= target, 15_000, 200)
    await eventually(async () => relayMetrics.slotConfirmedLsn.get({ slot: env.config.relay.slot }) >= Number(target), 5_000)
    expect(relayMetrics.slotLost.get({ slot: env.config.relay.slot })).toBe(0)
  }, 30_000)

  test('a table tracked in a trigger mode beside it is left to its trigger', async () => {
    const db = env.rt.db()
    const errors = relayMetrics.errors.get({ mode: 'logical' })
    await db.query(`insert into notes values (1, 'by trigger')`)
    await db.query(`insert into customers (name, email) values ('beside', 'beside@x')`)
    await eventually(async () => (await db.query(`select 1 from cdc.event_store where type = 'CustomerCreated' and payload->'after'->>'name' = 'beside'`)).length === 1)
    const notes = await db.query<{ n: number }>(`select count(*)::int as n from cdc.event_store where aggregate_type = 'notes'`)
    expect(notes[0]!.n).toBe(1)
    expect(relayMetrics.errors.get({ mode: 'logical' })).toBe(errors)
    const published = await db.query(`select 1 from pg_publication_tables where pubname = $1 and tablename = 'notes'`, [env.config.relay.publication])
    expect(published).toEqual([])
  }, 30_000)

  test('a table in its own schema: composite key, a stored generated column and an unchanged TOASTed value in full', async () => {
    const db = env.rt.db()
    await db.query(`create schema shop`)
    await db.query(`create table shop.lines (order_id int, line text, qty int not null, price numeric(10,2) not null,
      total numeric(12,2) generated always as (qty * price) stored, notes text, primary key (order_id, line))`)
    const spec = { ...captureSpec(env.config, { schema: 'shop', name: 'lines' }), mode: 'logical' }
    await db.query(`select cdc.track('shop', 'lines', $1::text::jsonb)`, [JSON.stringify(spec)])
    // incompressible, so it is stored out of line and an UPDATE that leaves it alone sends no value for it
    const notes = Array.from({ length: 400 }, (_, i) => Bun.hash(String(i)).toString(36)).join(' ')
    await db.query(`insert into shop.lines (order_id, line, qty, price, notes) values (7, 'a:b', 2, 1.50, $1)`, [notes])
    await db.query(`update shop.lines set qty = 3 where order_id = 7`)
    const events = await eventually(async () => {
      const rows = await db.query<{ type: string; payload: { before: Record<string, unknown> | null; after: Record<string, unknown>; changes: { path: string }[] } }>(
        `select type, payload from cdc.event_store where aggregate_type = 'shop.lines' and aggregate_id = '7:a%3Ab' order by version`,
      )
      return rows.length === 2 && rows
    })
    const [created, updated] = events
    expect(created!.payload.after).toMatchObject({ qty: 2, total: 3, notes })
    expect(updated!.payload.before).toMatchObject({ qty: 2, total: 3, notes })
    expect(updated!.payload.after).toMatchObject({ qty: 3, total: 4.5, notes })
    expect(updated!.payload.changes.map((c) => c.path).sort()).toEqual(['qty', 'total'])
  }, 30_000)

  test('previous images: the event store\'s last after, or kept row images for a table whose events cannot tell its rows', async () => {
    const db = env.rt.db()
    const specs = { img_plain: {}, img_masked: { mask: ['secret'] }, img_book: { bookkeeping: ['secret'] } }
    for (const [t, options] of Object.entries(specs)) {
      await db.query(`create table public.${t} (id int primary key, secret text, v text)`)
      const spec = { ...captureSpec(env.config, { schema: 'public', name: t }), mode: 'logical', ...options }
      await db.query(`select cdc.track('public', $1, $2::text::jsonb)`, [t, JSON.stringify(spec)])
      await db.query(`insert into public.${t} values (1, 's1', 'a')`)
      // a bookkeeping column's change alone makes no event (trigger mode's next OLD still has it)
      if (t === 'img_book') await db.query(`update public.${t} set secret = 's2'`)
      await db.query(`update public.${t} set v = 'b'`)
    }
    const updates = await eventually(async () => {
      const rows = await db.query<{ t: string; payload: { before: Record<string, unknown>; changes: { path: string }[] } }>(
        `select aggregate_type as t, payload from cdc.event_store where aggregate_type like 'img_%' and version = 2 order by 1`,
      )
      return rows.length === 3 && rows
    })
    // the unchanged secret is known on every table (the masked one compares its real value, kept unmasked)
    expect(updates.map((u) => [u.t, u.payload.before, u.payload.changes.map((c) => c.path)])).toEqual([
      ['img_book', { id: 1, secret: 's2', v: 'a' }, ['v']],
      ['img_masked', { id: 1, secret: '***', v: 'a' }, ['v']],
      ['img_plain', { id: 1, secret: 's1', v: 'a' }, ['v']],
    ])
    const images = async () => (await db.query<{ rel: string }>(`select rel from cdc.logical_images where rel like 'public.img_%' order by rel`)).map((r) => r.rel)
    expect(await images()).toEqual(['public.img_book', 'public.img_masked'])
    // kept for its masks: other masks make them stale, so they go
    const spec = { ...captureSpec(env.config, { schema: 'public', name: 'img_masked' }), mode: 'logical', mask: ['secret', 'v'] }
    await db.query(`select cdc.track('public', 'img_masked', $1::text::jsonb)`, [JSON.stringify(spec)])
    expect(await images()).toEqual(['public.img_book'])
  }, 30_000)

  type Stored = { aggregate: { id: string }; version: number; type: string; op: string; tx: { index: number }; changes: unknown; before: unknown; after: unknown; actor: unknown; reason: unknown; correlationId: unknown }
  type Step = { actor: string | null; sql: string[] }
  /**
   * Tracks `<name>_bulk` and `<name>_loop` alike, drops the second one's set-based capture so that it goes row by row,
   * runs the same steps on each (one table at a time, so each batch holds one table's transactions; after each group
   * of steps, waits for the events it makes, so the next group comes in later batches), and returns both tables'
   * events, which must be equal.
   */
  async function bothPaths(name: string, options: object, groups: { steps: Step[]; events: number }[]) {
    const db = env.rt.db()
    const tables = [`${name}_bulk`, `${name}_loop`]
    for (const t of tables) {
      await db.query(`create table public.${t} (id int primary key, name text, qty int, price numeric(10,2), seen timestamptz,
        tags text[], doc jsonb, spot point, secret text)`)
      const spec = { ...captureSpec(env.config, { schema: 'public', name: t }), mode: 'logical', exclude: ['secret'], ...options }
      await db.query(`select cdc.track('public', $1, $2::text::jsonb)`, [t, JSON.stringify(spec)])
    }
    const bulk = async (t: string) => (await db.query(`select to_regprocedure($1) is not null as x`, [`cdc.bulk_${t}(jsonb)`]))[0]!.x
    expect([await bulk(tables[0]!), await bulk(tables[1]!)]).toEqual([true, true])
    await db.query(`drop function cdc.bulk_${tables[1]}(jsonb)`)
    const read = (t: string, n: number) =>
      eventually(async () => {
        const rows = await db.query<{ payload: Stored }>(`select payload from cdc.event_store where aggregate_type = $1 order by aggregate_id, version`, [t])
        return rows.length === n && rows.map(({ payload: e }) =>
          [e.aggregate.id, e.version, e.type.replace(/^[A-Za-z]+(Bulk|Loop)/, ''), e.op, e.tx.index, e.changes, e.before, e.after, e.actor, e.reason, e.correlationId] as const)
      })
    const events: Awaited<ReturnType<typeof read>>[] = []
    for (const t of tables) {
      let total = 0
      for (const group of groups) {
        for (const step of group.steps) {
          await db.begin(async (q) => {
            if (step.actor) await q.query(`select set_config('cdc.actor', $1, true), set_config('cdc.reason', 'why', true), set_config('cdc.correlation_id', 'c-1', true)`, [step.actor])
            for (const sql of step.sql) await q.query(sql.replaceAll('{t}', `public.${t}`))
          })
        }
        total += group.events
        events.push(await read(t, total))
      }
    }
    const [viaBulk, viaLoop] = [events[groups.length - 1]!, events.at(-1)!]
    expect(viaBulk).toEqual(viaLoop)
    return viaBulk
  }

  test('a plain table\'s batches take the set-based capture, with the same events as the row-by-row path', async () => {
    const events = await bothPaths('pair', {}, [{ events: 12, steps: [
      { actor: 'alice', sql: [
        `insert into {t} values (1, 'one', 1, 1.50, '2026-01-02T03:04:05.123456Z', '{a,b}', '{"k": [1, 2]}', '(1,2)', 's'), (2, 'two', 2, 2, null, null, null, null, null), (3, 'th"ree', 3, 3, '2026-05-06 07:08:09+02', '{}', 'null', '(0,0)', 'x')`,
        `update {t} set name = 'uno' where id = 1`, `update {t} set qty = 10, seen = null where id = 1`] },
      { actor: null, sql: [`update {t} set name = name where id = 2`, `update {t} set secret = 'only excluded' where id = 2`,
        `update {t} set price = 3.25, tags = '{c}', doc = '{"k": {"deep": true}}', spot = '(2,2)' where id = 3`] },
      { actor: 'bob', sql: [`delete from {t} where id = 1`, `insert into {t} (id, name) values (1, 'again')`, `update {t} set qty = 5 where id = 1`] },
      { actor: 'carol', sql: [`update {t} set qty = qty + 1 where id in (2, 3)`, `delete from {t} where id = 3`] },
    ] }])
    // no event for an update that changes nothing compared; gapless versions over a delete and a new insert
    expect(events.map((e) => `${e[0]}:${e[1]}:${e[2]}`)).toEqual(['1:1:Created', '1:2:Updated', '1:3:Updated', '1:4:Deleted', '1:5:Created', '1:6:Updated',
      '2:1:Created', '2:2:Updated', '3:1:Created', '3:2:Updated', '3:3:Updated', '3:4:Deleted'])
    const [kept] = await env.rt.db().query<{ n: number }>(`select count(*)::int as n from cdc.logical_images where rel like 'public.pair_%'`)
    expect(kept!.n).toBe(0)
  }, 30_000)

  test('with bookkeeping columns too: their changes alone make no event, and the next event\'s before image has them', async () => {
    const events = await bothPaths('book', { bookkeeping: ['seen'] }, [
      // within a transaction: the previous image is the change before it
      { events: 4, steps: [{ actor: 'alice', sql: [`insert into {t} (id, name, qty) values (1, 'one', 1), (2, 'two', 2), (3, 'three', 3)`,
        `update {t} set seen = '2026-01-01Z' where id = 1`, `update {t} set name = 'uno' where id = 1`] }] },
      // across batches: the image kept for the row
      { events: 1, steps: [{ actor: 'bob', sql: [`update {t} set seen = '2026-02-02Z' where id = 2`, `update {t} set qty = 30 where id = 3`] }] },
      { events: 3, steps: [{ actor: 'carol', sql: [`update {t} set name = 'zwei' where id = 2`, `delete from {t} where id = 3`,
        `update {t} set seen = '2026-03-03Z', qty = 7 where id = 1`] }] },
    ])
    const row = (id: string, version: number) => events.find((e) => e[0] === id && e[1] === version)!
    expect(events.map((e) => `${e[0]}:${e[1]}:${e[2]}`)).toEqual(['1:1:Created', '1:2:Updated', '1:3:Updated', '2:1:Created', '2:2:Updated',
      '3:1:Created', '3:2:Updated', '3:3:Deleted'])
    expect([row('1', 2)[5], (row('1', 2)[6] as { seen: string }).seen]).toEqual([[{ path: 'name', before: 'one', after: 'uno' }], '2026-01-01T00:00:00+00:00'])
    expect([row('2', 2)[5], (row('2', 2)[6] as { seen: string }).seen]).toEqual([[{ path: 'name', before: 'two', after: 'zwei' }], '2026-02-02T00:00:00+00:00'])
    expect(row('1', 3)[5]).toEqual([{ path: 'qty', before: 1, after: 7 }])
    // both paths keep the last image of each row that is still there
    const images = await env.rt.db().query<{ rel: string; key: string }>(`select rel, key from cdc.logical_images where rel like 'public.book_%' order by rel, key`)
    expect(images.map((i) => `${i.rel} ${i.key}`)).toEqual(['public.book_bulk ["1"]', 'public.book_bulk ["2"]', 'public.book_loop ["1"]', 'public.book_loop ["2"]'])
  }, 30_000)

  test('with rules too: types, splits and reasons as the capture function gives them', async () => {
    const rules = [
      { op: 'c', columns: ['qty'], value: 0, type: 'RuleEmptyAdded', reason: 'restock' },
      { op: 'c', type: 'RuleAdded' },
      { op: 'u', columns: ['name'], type: 'RuleRenamed' },
      { op: 'u', columns: ['qty'], value: 0, type: 'RuleSoldOut' },
      { op: 'u', columns: ['price', 'tags'], type: 'RuleRepriced' },
      { op: 'd', type: 'RuleRemoved', reason: 'HARD_DELETE' },
    ]
    const events = await bothPaths('rule', { bookkeeping: ['seen'], rules }, [
      { events: 7, steps: [
        { actor: null, sql: [`insert into {t} (id, name, qty) values (1, 'one', 0), (2, 'two', 5)`,
          `update {t} set name = 'uno', qty = 3, seen = '2026-01-01Z' where id = 1`] },
        { actor: 'alice', sql: [`update {t} set qty = 0, price = 9, doc = '{}' where id = 2`, `update {t} set seen = '2026-02-02Z' where id = 2`] },
      ] },
      { events: 3, steps: [
        { actor: null, sql: [`update {t} set name = 'zwei' where id = 2`, `delete from {t} where id = 1`] },
        { actor: 'bob', sql: [`delete from {t} where id = 2`] },
      ] },
    ])
    expect(events.map((e) => `${e[0]}:${e[1]}:${e[2]}:${e[4]}:${e[9]}`)).toEqual([
      '1:1:RuleEmptyAdded:0:restock', '1:2:RuleRenamed:2:null', '1:3:Updated:3:null', '1:4:RuleRemoved:1:HARD_DELETE',
      '2:1:RuleAdded:1:null', '2:2:RuleSoldOut:0:why', '2:3:RuleRepriced:1:why', '2:4:Updated:2:why', '2:5:RuleRenamed:0:null', '2:6:RuleRemoved:0:why'])
    // a split update's images step through its parts; bookkeeping rides along with the first, in no changes
    const part = (id: string, version: number) => events.find((e) => e[0] === id && e[1] === version)!
    expect([part('1', 2)[5], part('1', 2)[7]]).toMatchObject([[{ path: 'name' }], { name: 'uno', qty: 0, seen: '2026-01-01T00:00:00+00:00' }])
    expect([part('1', 3)[5], part('1', 3)[6], part('1', 3)[7]]).toMatchObject([[{ path: 'qty' }], { qty: 0 }, { qty: 3 }])
    expect((part('2', 5)[6] as { seen: string }).seen).toBe('2026-02-02T00:00:00+00:00')
  }, 30_000)

  test('tables tracked while the relay runs are applied through the static dispatch, which follows track and untrack', async () => {
    const db = env.rt.db()
    const tables = ['d1', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7']
    for (const t of tables) {
      await db.query(`create table public.${t} (id int primary key, v text)`)
      const spec = { ...captureSpec(env.config, { schema: 'public', name: t }), mode: 'logical' }
      await db.query(`select cdc.track('public', $1, $2::text::jsonb)`, [t, JSON.stringify(spec)])
    }
    await db.begin(async (tx) => {
      for (const t of tables) await tx.query(`insert into public.${t} values (1, 'one')`)
      for (const t of tables) await tx.query(`update public.${t} set v = 'two'`)
    })
    await eventually(async () => {
      const [row] = await db.query<{ n: number }>(`select count(*)::int as n from cdc.event_store where aggregate_type like 'd_'`)
      return row!.n === tables.length * 2
    })
    const source = async () => (await db.query<{ src: string }>(`select prosrc as src from pg_proc where proname = 'logical_capture'`))[0]!.src
    for (const t of tables) expect(await source()).toContain(`perform cdc.capture_${t}(`)
    const [unknown] = await db.query<{ handled: boolean }>(`select cdc.logical_capture('capture_nothing', 'INSERT', null, null) as handled`)
    expect(unknown!.handled).toBe(false)
    await db.query(`select cdc.untrack('public', 'd4')`)
    expect(await source()).not.toContain('capture_d4')
    expect(await source()).toContain('capture_d5')
    // a column added later: the regenerated capture function and the row type reach the apply session's calls
    await db.query(`alter table public.d5 add column extra text`)
    await db.query(`insert into public.d5 values (2, 'two', 'added')`)
    const [created] = await eventually(async () => {
      const rows = await db.query<{ payload: { after: Record<string, unknown> } }>(
        `select payload from cdc.event_store where aggregate_type = 'd5' and aggregate_id = '2'`,
      )
      return rows.length === 1 && rows
    })
    expect(created!.payload.after).toEqual({ id: 2, v: 'two', extra: 'added' })
  }, 30_000)

  test('TRUNCATE of a tracked table is refused', async () => {
    const error = await env.rt.db().query('truncate customers cascade').catch((e: Error) => e)
    expect(String(error)).toContain('TRUNCATE of tracked table public.customers is refused')
  })
})

test('a dropped slot is a loud, stuck state: not re-created, nothing published past it', async () => {
  const env = await logical((c) => {
    c.relay.retryMaxMs = 500
  })
  await migrate(env.rt)
  const db = env.rt.db()
  const relay = await startRelay(env.rt)
  try {
    await eventually(async () => (await db.query(`select 1 from pg_replication_slots where slot_name = $1 and active`, [env.config.relay.slot])).length > 0)
    // what an operator (or max_slot_wal_keep_size) does to the slot: gone while the relay runs
    await eventually(async () => {
      await db.query(`select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active`, [env.config.relay.slot])
      await db.query(`select pg_drop_replication_slot($1)`, [env.config.relay.slot])
      return true
    }, 10_000, 50)
    await db.query(`insert into customers (name, email) values ('after', 'after@x')`)
    await eventually(async () => relayMetrics.slotLost.get({ slot: env.config.relay.slot }) === 1, 20_000)
    const [state] = await db.query<{ state: string }>('select state from cdc.logical_slots where slot = $1', [env.config.relay.slot])
    expect(state!.state).toBe('lost')
    await Bun.sleep(1500)
    expect(await db.query('select 1 from pg_replication_slots where slot_name = $1', [env.config.relay.slot])).toEqual([])
  } finally {
    await relay.stop()
    await cleanupEnv(env)
  }
}, 60_000)

test('a replayed batch is not applied again: the same events, same ids and versions, come back', async () => {
  const env = await logical()
  try {
    await migrate(env.rt)
    const db = env.rt.db()
    const batch = JSON.stringify([
      {
        lsn: '0/AB000010',
        at: '2026-11-30T10:00:00.123Z',
        xid: '900',
        ctx: [['900', 'alice', 'api', 'why', 'req-1', null]],
        items: [
          { x: 0, k: 'c', s: 'public', t: 'customers', key: '["77"]', new: { id: '77', name: 'Ann', email: 'a@x', created_at: '2026-01-01Z', updated_at: '2026-01-01Z' } },
          { x: 0, k: 'u', s: 'public', t: 'customers', key: '["77"]', new: { id: '77', name: 'Anna', email: 'a@x', created_at: '2026-01-01Z', updated_at: '2026-01-01Z' }, old: { id: '77' } },
        ],
      },
    ])
    const apply = () => db.query<{ event_id: string; version: number; type: string; payload: string }>(
      `select event_id, version, type, payload from cdc.logical_apply($1, $2::text::jsonb)`,
      ['s1', batch],
    )
    const first = await apply()
    expect(first.map((e) => [e.type, e.version])).toEqual([['CustomerCreated', 1], ['CustomerNameChanged', 2]])
    expect(JSON.parse(first[1]!.payload)).toMatchObject({
      actor: { id: 'alice', source: 'api' },
      reason: 'why',
      correlationId: 'req-1',
      tx: { id: '900', index: 1 },
      occurredAt: '2026-11-30T10:00:00.123000Z',
      changes: [{ path: 'name', before: 'Ann', after: 'Anna' }],
    })
    // UUIDv7-shaped, the commit time in its first 48 bits
    expect(first[0]!.event_id).toMatch(/^01a22be5-a57b-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(await apply()).toEqual(first)
    const [n] = await db.query<{ n: number }>('select count(*)::int as n from cdc.event_store')
    expect(n!.n).toBe(2)
    // the same through a plain table's set-based capture (its replay is read back like any other)
    await db.query('create table public.plain (id int primary key, v text)')
    const spec = { ...captureSpec(env.config, { schema: 'public', name: 'plain' }), mode: 'logical' }
    await db.query(`select cdc.track('public', 'plain', $1::text::jsonb)`, [JSON.stringify(spec)])
    const plain = JSON.stringify([{ lsn: '0/AB000020', at: '2026-11-30T10:00:01Z', xid: '901', ctx: [['901', 'bob', 'sql', null, null, null]],
      items: [{ x: 0, k: 'c', s: 'public', t: 'plain', key: '["5"]', new: { id: '5', v: 'a' } }, { x: 0, k: 'u', s: 'public', t: 'plain', key: '["5"]', new: { id: '5', v: 'b' }, old: { id: '5' } }] }])
    const applyPlain = () => db.query<{ event_id: string; version: number; type: string; payload: string }>(
      `select event_id, version, type, payload from cdc.logical_apply($1, $2::text::jsonb)`,
      ['s1', plain],
    )
    const once = await applyPlain()
    expect(once.map((e) => [e.type, e.version, JSON.parse(e.payload).tx.index, JSON.parse(e.payload).actor.id])).toEqual([['PlainCreated', 1, 0, 'bob'], ['PlainUpdated', 2, 1, 'bob']])
    expect(JSON.parse(once[1]!.payload)).toMatchObject({ before: { id: 5, v: 'a' }, after: { id: 5, v: 'b' }, changes: [{ path: 'v', before: 'a', after: 'b' }] })
    expect(await applyPlain()).toEqual(once)
  } finally {
    await cleanupEnv(env)
  }
}, 60_000)
