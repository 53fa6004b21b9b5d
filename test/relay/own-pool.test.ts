// The relay has its own PostgreSQL pool (Runtime.relayDb): in `cdc all` the API's write transactions share the process's
// pool, and when they hold every connection the relay's reads, deletes and wake-up queries must not wait behind them.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { connect, type Db } from '../../src/clients/postgres.ts'
import { startRelay } from '../../src/relay/index.ts'
import type { Role } from '../../src/runtime.ts'
import { createTestEnv, type TestEnv } from '../support/env.ts'
import { cleanupEnv, prepareDb, readUntil } from './support.ts'

let env: TestEnv
let relay: Role | undefined
let writer: Db
const HOLD = 'select pg_sleep(120) /* holding the shared pool */'

beforeAll(async () => {
  env = await createTestEnv((c) => {
    c.postgres.maxConnections = 2
  })
  await prepareDb(env)
  writer = connect({ url: env.config.postgres.url, max: 1 })
}, 60_000)

afterAll(async () => {
  await writer.query(`select pg_cancel_backend(pid) from pg_stat_activity where query = $1`, [HOLD]).catch(() => {})
  await relay?.stop()
  await writer.end()
  await cleanupEnv(env)
}, 60_000)

test('the relay publishes while long transactions hold every connection of the shared pool', async () => {
  // Both connections of the shared pool busy, as under a burst of slow API writes.
  const holders = [0, 1].map(() => env.rt.db().begin((tx) => tx.query(HOLD)).catch(() => {}))
  relay = await startRelay(env.rt)
  const [row] = await writer.query<{ id: number }>(`insert into customers (name, email) values ('pooled', 'pooled@example.com') returning id`)
  const id = String(row!.id)
  const got = await readUntil(env, [`${env.tag}.customers`], (ms) => ms.some((m) => m.key === id), 60_000)
  expect(got.some((m) => m.key === id)).toBe(true)
  // Still held: the delivery did not come from the shared pool freeing up.
  const [held] = await writer.query<{ n: number }>(`select count(*)::int as n from pg_stat_activity where query = $1 and state = 'active'`, [HOLD])
  expect(held!.n).toBe(2)
  await writer.query(`select pg_cancel_backend(pid) from pg_stat_activity where query = $1`, [HOLD])
  await Promise.all(holders)
}, 120_000)
