// Concurrent writers: per-aggregate versions stay gapless and in commit order, on one hot row and on many rows.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { TestEnv } from '../support/env.ts'
import { track } from '../../src/capture/track.ts'
import { migratedEnv, storedEvents } from './support.ts'

let env: TestEnv
beforeAll(async () => {
  env = await migratedEnv((c) => {
    c.postgres.maxConnections = 8
  })
  await env.rt.db().query('create table public.counters (id int primary key, n int not null default 0, note text)')
  await track(env.rt, 'counters')
})
afterAll(() => env.cleanup())

const db = () => env.rt.db()

test('8 writers × 25 transactions on one row: versions 1..201, each event one step after the previous', async () => {
  await db().query('insert into counters (id) values (1)')
  await Promise.all(
    Array.from({ length: 8 }, (_, w) =>
      (async () => {
        for (let i = 0; i < 25; i++) {
          await db().begin(async (tx) => {
            await tx.query(`update counters set n = n + 1, note = $1 where id = 1`, [`w${w}`])
            await tx.query(`select pg_sleep(0.001)`)
          })
        }
      })(),
    ),
  )
  const events = await storedEvents(db(), 'counters')
  expect(events.map((e) => e.version)).toEqual(Array.from({ length: 201 }, (_, i) => i + 1))
  events.forEach((e, i) => {
    expect(e.after!.n).toBe(i)
    if (i > 0) {
      expect(e.before).toEqual(events[i - 1]!.after)
      expect(e.occurredAt > events[i - 1]!.occurredAt).toBe(true)
    }
  })
})

test('8 writers on 20 rows with inserts, updates and deletes: every aggregate gapless, last image = the row', async () => {
  const rows = 20
  await Promise.all(
    Array.from({ length: 8 }, (_, w) =>
      (async () => {
        for (let i = 0; i < 40; i++) {
          const id = 100 + ((w * 7 + i * 3) % rows)
          await db().begin(async (tx) => {
            await tx.query(`insert into counters (id) values ($1) on conflict (id) do update set n = counters.n + 1`, [id])
            await tx.query(`update counters set note = $2 where id = $1`, [100 + ((id + 1) % rows), `w${w}i${i}`])
            if (i % 9 === 0) await tx.query(`delete from counters where id = $1`, [100 + ((id + 5) % rows)])
          })
        }
      })(),
    ),
  )
  const events = (await storedEvents(db(), 'counters')).filter((e) => Number(e.aggregate.id) >= 100)
  const byId = Map.groupBy(events, (e) => e.aggregate.id)
  expect(byId.size).toBeGreaterThan(10)
  const current = new Map((await db().query<{ id: number; row: Record<string, unknown> }>('select id, to_jsonb(c) as row from counters c where id >= 100')).map((r) => [String(r.id), r.row]))
  for (const [id, list] of byId) {
    expect(list.map((e) => e.version)).toEqual(list.map((_, i) => i + 1))
    const last = list.at(-1)!
    if (last.op === 'd') expect(current.has(id)).toBe(false)
    else expect(last.after).toEqual(current.get(id)!)
  }
})
