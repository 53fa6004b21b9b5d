// The slot-based relay sends its standby status updates at most every 100 ms (src/relay/stream.ts): a confirmation
// that falls inside that window still goes out on its own, without waiting for the heartbeat or for more traffic.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { startRelay } from '../../src/relay/index.ts'
import type { Role } from '../../src/runtime.ts'
import { createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { allDelivered, checkDelivery, cleanupEnv, newWritten, parseLsn, prepareDb, readUntil, slotLsn, writeTx } from './support.ts'

let env: TestEnv
let relay: Role | undefined

beforeAll(async () => {
  env = await createTestEnv((c) => {
    // far beyond the test: only the status updates themselves can move the slot
    c.relay.heartbeatMs = 600_000
  })
  await prepareDb(env)
})

afterAll(async () => {
  await relay?.stop()
  await cleanupEnv(env)
})

test('batches published back to back are each confirmed to the slot soon after, the last one too', async () => {
  const db = env.rt.db()
  relay = await startRelay(env.rt, { mode: 'wal' })
  const written = newWritten()
  // several batches inside one 100 ms window: the first is confirmed at once, the rest by the window's trailing update
  for (let i = 0; i < 12; i++) await writeTx(db, written, [`s${i % 4}`])
  const [end] = await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')
  const messages = await readUntil(env, [`${env.tag}.customers`], allDelivered(written))
  expect(checkDelivery(messages, written).problems).toEqual([])
  await eventually(async () => (await slotLsn(env)) >= parseLsn(end!.lsn), 5_000)
}, 60_000)
