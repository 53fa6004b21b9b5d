// A MongoDB-side stall of one operation (issue 21): the PostgreSQL table behind one collection of the MongoDB-wire
// server is locked, so every write to that collection hangs while the server answers everything else. The batches on
// other collections keep being stored (the timed-out operation replaces no client under them); a short stall is retried
// and absorbed; a stall that outlasts consume.batchAttempts isolates the message and dead-letters it, never an endless
// loop.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { connectMongo, healingStore } from '../../src/clients/mongo.ts'
import { connect, ident } from '../../src/clients/postgres.ts'
import { startConsumer } from '../../src/consume/index.ts'
import * as metrics from '../../src/consume/metrics.ts'
import { DlqHeaders } from '../../src/events.ts'
import type { Role, Runtime } from '../../src/runtime.ts'
import { createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { ensureTopics, history, message, publish, readAll, stateOf, versions } from './support.ts'

let env: TestEnv
let rt: Runtime
let consumer: Role | undefined

beforeAll(async () => {
  env = await createTestEnv((c) => {
    c.consume.tables = ['customers', 'orders']
    c.consume.batchAttempts = 3
    c.consume.retryMaxMs = 500
  })
  // Short limits, so that a stalled operation times out within the test (the product's are 25 s / 30 s).
  const store = healingStore(() => connectMongo({ url: env.config.mongo.url, database: env.config.mongo.database, maxTimeMs: 1500 }), {
    operationTimeoutMs: 2000,
    probeTimeoutMs: 2000,
  })
  rt = { ...env.rt, mongo: async () => store, close: async () => (await store.close(), await env.rt.close()) }
  await ensureTopics(env, [`${env.tag}.customers`, `${env.tag}.orders`])
  consumer = await startConsumer(rt)
})

afterAll(async () => {
  await consumer?.stop()
  await (await rt?.mongo())?.close()
  await env?.cleanup()
})

/** Locks the PostgreSQL table FerretDB keeps `collection` in; returns the release. */
async function lockCollection(collection: string): Promise<() => Promise<void>> {
  const url = new URL(env.config.postgres.url)
  url.pathname = '/ferretdb'
  const db = connect({ url: url.toString(), max: 1 })
  const schema = ident(env.config.mongo.database)
  const [row] = await db.query<{ table: string }>(
    `select _jsonb->>'table' as table from ${schema}._ferretdb_database_metadata where _jsonb->>'_id' = $1`,
    [collection],
  )
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  let locked!: () => void
  const isLocked = new Promise<void>((resolve) => (locked = resolve))
  const held = db.begin(async (tx) => {
    await tx.query(`lock table ${schema}.${ident(row!.table)} in access exclusive mode`)
    locked()
    await released
  })
  await Promise.race([isLocked, held])
  return async () => {
    release()
    await held
    await db.end()
  }
}

const retries = () => ({
  timeout: metrics.retries.get({ kind: 'timeout' }),
  unreachable: metrics.retries.get({ kind: 'unreachable' }),
  other: metrics.retries.get({ kind: 'other' }),
})

describe('a stalled MongoDB operation', () => {
  test('a timeout on one operation never closes the client under another one in flight', async () => {
    const store = await rt.mongo()
    const lockA = await lockCollection('customers_history')
    const lockB = await lockCollection('orders_history')
    try {
      const [a] = versions('customers', 'ta', 1, 1)
      const [b] = versions('orders', 'tb', 1, 1)
      const hanging = store.collection('customers_history').insertMany([{ _id: a!.id, ...a }]).then(
        () => 'stored',
        (e: Error) => e.message,
      )
      await Bun.sleep(1000)
      const slow = store.collection('orders_history').insertMany([{ _id: b!.id, ...b }])
      // The first one gives up while the second is still in flight on the same client...
      expect(await hanging).toContain('timed out')
      await lockB()
      // ...which still completes.
      expect(await slow).toEqual({ inserted: 1, duplicates: [] })
    } finally {
      await lockA()
    }
  }, 60_000)

  test('batches on other collections are stored while one hangs; a short stall is retried and nothing is lost or doubled', async () => {
    env.config.consume.batchAttempts = 8
    await publish(env, [...versions('customers', 'c0', 1, 1), ...versions('orders', 'o0', 1, 1)].map((e) => message(env, e)))
    await eventually(async () => (await stateOf(env, 'customers', 'c0')) && (await stateOf(env, 'orders', 'o0')), 30_000)
    const before = retries()
    const release = await lockCollection('customers_history')
    const orders = ['o1', 'o2', 'o3', 'o4', 'o5'].map((id) => versions('orders', id, 1, 3))
    const ids = ['o0', 'o1', 'o2', 'o3', 'o4', 'o5']
    try {
      // One send: the customers batch and the orders batches of the same fetch are in flight together.
      await publish(env, [...versions('customers', 'c1', 1, 2), ...orders.flat()].map((e) => message(env, e)))
      await eventually(async () => retries().timeout > before.timeout, 30_000)
      await eventually(async () => (await history(env, 'orders', { 'aggregate.id': { $in: ids } })).length === 16, 10_000).catch(() => {})
    } finally {
      await release()
    }
    await eventually(async () => (await stateOf(env, 'customers', 'c1'))?.version === 2, 30_000)
    for (const id of ['o1', 'o2', 'o3', 'o4', 'o5']) await eventually(async () => (await stateOf(env, 'orders', id))?.version === 3, 20_000)
    expect(await history(env, 'customers', { 'aggregate.id': 'c1' })).toHaveLength(2)
    expect(await history(env, 'orders', { 'aggregate.id': { $in: ids } })).toHaveLength(16)
    // A timeout is not a dead server: no client was replaced, nothing aborted, nothing dead-lettered.
    expect(retries().unreachable).toBe(before.unreachable)
    expect(retries().other).toBe(before.other)
    expect(await readAll(env, `${env.tag}.customers.dlq`)).toEqual([])
    expect(await readAll(env, `${env.tag}.orders.dlq`)).toEqual([])
  }, 120_000)

  test('a batch that keeps timing out is narrowed to its message, which is dead-lettered: no endless retry', async () => {
    env.config.consume.batchAttempts = 3
    const isolatedBefore = metrics.isolated.get({ topic: `${env.tag}.customers` })
    const release = await lockCollection('customers_history')
    try {
      await publish(env, versions('customers', 'c2', 1, 1).map((e) => message(env, e)))
      const dead = await eventually(async () => (await readAll(env, `${env.tag}.customers.dlq`)).find((m) => m.key === 'c2'), 60_000)
      expect(dead.headers[DlqHeaders.error]).toContain('failed in isolation (timeout)')
      expect(metrics.isolated.get({ topic: `${env.tag}.customers` })).toBe(isolatedBefore + 1)
      // The partition moved on: orders were never held up.
      await publish(env, versions('orders', 'o9', 1, 2).map((e) => message(env, e)))
      await eventually(async () => (await stateOf(env, 'orders', 'o9'))?.version === 2, 20_000)
    } finally {
      await release()
    }
    // Its key is parked: a follower waits behind it in the DLQ (order kept for a redrive).
    await publish(env, versions('customers', 'c2', 2, 2).map((e) => message(env, e)))
    await eventually(async () => (await readAll(env, `${env.tag}.customers.dlq`)).filter((m) => m.key === 'c2').length === 2, 30_000)
  }, 120_000)
})
