// Poll-mode wake-ups (cdc.arm_relay_wake in sql/definitions/events.sql): writers NOTIFY only while the relay has armed cdc.relay_wake, and a commit
// that announced nothing still goes out promptly. relay.pollIntervalMs is 60 s here, so waiting for the poll would
// time every test out.
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { startRelay } from '../../src/relay/index.ts'
import { relayMetrics } from '../../src/relay/metrics.ts'
import type { Role } from '../../src/runtime.ts'
import { createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { cleanupEnv, prepareDb, readUntil } from './support.ts'

let env: TestEnv
let relay: Role | undefined
// Waking up is not an error path: a failing wake-up query would still deliver (the retry re-reads), only late.
const errorsAtStart = relayMetrics.errors.get({ mode: 'poll' })

beforeAll(async () => {
  env = await createTestEnv((c) => {
    c.relay.pollIntervalMs = 60_000
  })
  await prepareDb(env)
}, 60_000)

afterAll(async () => {
  await relay?.stop()
  await cleanupEnv(env)
}, 60_000)

const db = () => env.rt.db()
const armed = async () => {
  const [row] = await db().query<{ armed: boolean }>(`select coalesce(pg_sequence_last_value('cdc.relay_wake') = 1, false) as armed`)
  return row!.armed
}
const insertCustomer = async (name: string) => {
  const [row] = await db().query<{ id: number }>(`insert into customers (name, email) values ($1, $1 || '@example.com') returning id`, [name])
  return String(row!.id)
}
const delivered = (id: string, timeoutMs = 15_000) =>
  readUntil(env, [`${env.tag}.customers`], (ms) => ms.some((m) => m.key === id), timeoutMs)

test('writers NOTIFY only while the flag is armed, once per transaction', async () => {
  const got: string[] = []
  const { unlisten } = await db().listen('cdc_outbox', (payload) => got.push(payload))
  try {
    await insertCustomer('quiet')
    await db().query(`select setval('cdc.relay_wake', 1)`)
    await db().begin(async (tx) => {
      await tx.query(`insert into customers (name, email) values ('loud1', 'loud1@example.com'), ('loud2', 'loud2@example.com')`)
    })
    await eventually(async () => got.length >= 1, 5000, 20)
    await Bun.sleep(300)
    expect(got).toEqual([''])
  } finally {
    await db().query(`select setval('cdc.relay_wake', 0)`)
    await unlisten()
  }
})

test('a commit that did not NOTIFY, running when the relay went idle, is published without waiting for the poll', async () => {
  await db().query('delete from cdc.outbox')
  // Begun (and its first event written, the flag unarmed) before the relay starts and goes idle.
  const tx = await db().reserve()
  try {
    await tx.query('begin')
    const [row] = await tx.query<{ id: number }>(`insert into customers (name, email) values ('early', 'early@example.com') returning id`)
    relay = await startRelay(env.rt, { mode: 'poll' })
    await eventually(armed, 10_000, 50)
    await Bun.sleep(500)
    await tx.query('commit')
    await delivered(String(row!.id))
  } finally {
    tx.release()
  }
}, 60_000)

test('an idle relay is woken by the next commit, then arms the flag again', async () => {
  await eventually(armed, 10_000, 50)
  const id = await insertCustomer('wake')
  await delivered(id)
  // After the wake-up the relay disarms, and arms again once it is idle.
  await eventually(armed, 10_000, 50)
  expect(relayMetrics.errors.get({ mode: 'poll' })).toBe(errorsAtStart)
}, 60_000)
