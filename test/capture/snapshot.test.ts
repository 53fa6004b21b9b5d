// `cdc snapshot`: op "r" events for existing rows, resumable after a kill -9, consistent with concurrent writers.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { eventually, ROOT, type TestEnv } from '../support/env.ts'
import { track } from '../../src/capture/track.ts'
import { snapshot } from '../../src/capture/snapshot.ts'
import { migratedEnv, storedEvents } from './support.ts'

let env: TestEnv
beforeAll(async () => {
  env = await migratedEnv()
})
afterAll(() => env.cleanup())

const db = () => env.rt.db()

async function tableWithRows(name: string, rows: number) {
  await db().query(`create table public.${name} (id int primary key, n int not null default 0)`)
  await db().query(`insert into public.${name} (id) select generate_series(1, $1)`, [rows])
  await track(env.rt, name)
}

test('every existing row gets one Snapshotted event (op r, source snapshot); a rerun does nothing until --restart', async () => {
  await tableWithRows('widgets', 25)
  expect(await snapshot(env.rt, 'widgets', { batchSize: 10 })).toEqual({ table: 'widgets', rows: 25, done: true })
  expect(await snapshot(env.rt, 'widgets', { batchSize: 10 })).toEqual({ table: 'widgets', rows: 0, done: true })
  const events = await storedEvents(db(), 'widgets')
  expect(events.length).toBe(25)
  expect(events.every((e) => e.op === 'r' && e.type === 'WidgetSnapshotted' && e.version === 1 && e.actor.source === 'snapshot')).toBe(true)
  expect(events[0]!.after).toEqual({ id: 1, n: 0 })
  await db().query('update widgets set n = 1 where id = 3')
  await snapshot(env.rt, 'widgets', { batchSize: 100, restart: true })
  const third = (await storedEvents(db(), 'widgets')).filter((e) => e.aggregate.id === '3')
  expect(third.map((e) => [e.type, e.version])).toEqual([
    ['WidgetSnapshotted', 1],
    ['WidgetUpdated', 2],
    ['WidgetSnapshotted', 3],
  ])
})

test('an untracked table is refused', async () => {
  await expect(snapshot(env.rt, 'nothing_here')).rejects.toThrow(/is not tracked/)
})

test('killed mid-way (kill -9), a rerun resumes from the saved cursor: each row exactly once', async () => {
  await tableWithRows('gadgets', 3000)
  const proc = Bun.spawn(['bun', `${ROOT}src/cli.ts`, 'snapshot', 'gadgets', '--batch-size', '5'], {
    cwd: ROOT,
    env: { ...process.env, CDC_POSTGRES_URL: env.config.postgres.url, CDC_LOG_LEVEL: 'error' },
    stdout: 'ignore',
    stderr: 'ignore',
  })
  await eventually(async () => {
    const [c] = await db().query<{ rows: number }>(`select rows from cdc.snapshot_cursors where table_name = 'gadgets'`)
    return (c?.rows ?? 0) > 50
  }, 20_000, 20)
  proc.kill(9)
  await proc.exited
  const [cursor] = await db().query<{ rows: number; done: boolean }>(`select rows, done from cdc.snapshot_cursors where table_name = 'gadgets'`)
  expect(cursor!.done).toBe(false)
  const result = await snapshot(env.rt, 'gadgets', { batchSize: 500 })
  expect(result.rows).toBe(3000 - cursor!.rows)
  const [counts] = await db().query<{ events: number; ids: number }>(
    `select count(*)::int as events, count(distinct aggregate_id)::int as ids from cdc.event_store where aggregate_type = 'gadgets'`,
  )
  expect(counts).toEqual({ events: 3000, ids: 3000 })
})

test('writers during a snapshot: one snapshot event per row, and its version fits between the writers\' events', async () => {
  await tableWithRows('gizmos', 400)
  let stop = false
  const writers = Array.from({ length: 3 }, (_, w) =>
    (async () => {
      let i = 0
      while (!stop) {
        const id = 1 + ((w * 131 + i++ * 17) % 400)
        await db().query('update gizmos set n = n + 1 where id = $1', [id])
      }
    })(),
  )
  await snapshot(env.rt, 'gizmos', { batchSize: 7 })
  stop = true
  await Promise.all(writers)
  const byId = Map.groupBy(await storedEvents(db(), 'gizmos'), (e) => e.aggregate.id)
  expect(byId.size).toBe(400)
  let interleaved = 0
  for (const list of byId.values()) {
    expect(list.map((e) => e.version)).toEqual(list.map((_, i) => i + 1))
    expect(list.filter((e) => e.op === 'r').length).toBe(1)
    list.forEach((e, i) => {
      if (i > 0) expect(e.op === 'u' ? e.before : e.after).toEqual(list[i - 1]!.after)
    })
    if (list[0]!.op === 'u') interleaved++
  }
  expect(interleaved).toBeGreaterThan(0)
})
