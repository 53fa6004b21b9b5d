// WAL mode in-process: the outbox-free "emit" variant, outbox rows deleted after publishing, rows older than the slot,
// heartbeats that let an idle database's slot move on (no WAL retained), and status updates that are few yet timely.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { startRelay } from '../../src/relay/index.ts'
import { relayMetrics } from '../../src/relay/metrics.ts'
import type { Role } from '../../src/runtime.ts'
import { createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { allDelivered, checkDelivery, newWritten, parseLsn, prepareDb, readUntil, writeTx, cleanupEnv, slotLsn, walElsewhere } from './support.ts'

let env: TestEnv
let relay: Role | undefined

beforeAll(async () => {
  env = await createTestEnv((c) => {
    c.relay.heartbeatMs = 300
    c.relay.batchSize = 50
  })
  await prepareDb(env)
})

afterAll(async () => {
  await relay?.stop()
  await cleanupEnv(env)
})

test('rows written before the slot existed are published, then the stream takes over', async () => {
  const db = env.rt.db()
  const written = newWritten()
  for (let i = 0; i < 30; i++) await writeTx(db, written, [`old${i % 3}`])
  relay = await startRelay(env.rt, { mode: 'wal' })
  for (let i = 0; i < 30; i++) await writeTx(db, written, [`old${i % 3}`, `new${i % 4}`])
  const messages = await readUntil(env, [`${env.tag}.customers`], allDelivered(written))
  expect(checkDelivery(messages, written).problems).toEqual([])
  await eventually(async () => (await db.query('select 1 from cdc.outbox limit 1')).length === 0)
  const [backfill] = await db.query('select * from cdc.relay_slot_backfill')
  expect(backfill).toBeUndefined()
}, 60_000)

test('emit mode: pg_logical_emit_message envelopes are published without outbox rows', async () => {
  const db = env.rt.db()
  const written = newWritten()
  for (let i = 0; i < 20; i++) await writeTx(db, written, [`m${i % 3}`, `n${i % 2}`], 'emit')
  // A rolled-back transaction's messages are never decoded.
  await db.begin(async (tx) => {
    await tx.query(`select pg_logical_emit_message(true, 'cdc', '{"broken": true}')`)
    throw new Error('rollback')
  }).catch(() => {})
  // A committed message that is no envelope is skipped (logged), and does not stop the stream.
  await db.query(`select pg_logical_emit_message(true, 'cdc', 'not json')`)
  await writeTx(db, written, ['after-poison'], 'emit')
  const messages = await readUntil(env, [`${env.tag}.customers`], allDelivered(written))
  expect(checkDelivery(messages, written).problems).toEqual([])
  expect((await db.query('select 1 from cdc.outbox')).length).toBe(0)
}, 60_000)

test('a transaction larger than relay.batchSize goes out whole, in one Kafka transaction', async () => {
  const db = env.rt.db()
  await eventually(async () => relayMetrics.backlog.get({ mode: 'wal' }) === 0)
  const before = relayMetrics.batches.get({ mode: 'wal' })
  const written = newWritten()
  await writeTx(db, written, Array.from({ length: 120 }, (_, i) => `big${i}`)) // batchSize is 50
  const messages = await readUntil(env, [`${env.tag}.customers`], allDelivered(written))
  expect(checkDelivery(messages, written).problems).toEqual([])
  expect(relayMetrics.batches.get({ mode: 'wal' }) - before).toBe(1)
}, 60_000)

test('an idle database does not hold WAL back: the slot follows the server', async () => {
  const before = await slotLsn(env)
  const target = await walElsewhere(env)
  expect(target).toBeGreaterThan(before)
  await eventually(async () => (await slotLsn(env)) >= target, 15_000, 200)
}, 30_000)

test('status updates go out at most every 100 ms, yet batches published inside one window are all confirmed soon after', async () => {
  // A relay whose heartbeat never comes during the test: only its status updates themselves can move the slot (the
  // window's trailing update, and the idle position from the server's keepalives).
  await relay?.stop()
  env.config.relay.heartbeatMs = 600_000
  relay = await startRelay(env.rt, { mode: 'wal' })
  const db = env.rt.db()
  const written = newWritten()
  for (let i = 0; i < 12; i++) await writeTx(db, written, [`s${i % 4}`])
  const [end] = await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')
  const messages = await readUntil(env, [`${env.tag}.customers`], allDelivered(written))
  expect(checkDelivery(messages, written).problems).toEqual([])
  await eventually(async () => (await slotLsn(env)) >= parseLsn(end!.lsn), 5_000)
}, 60_000)
