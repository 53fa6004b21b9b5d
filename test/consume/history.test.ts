// The consumer against the real stack: history once per event, the read model only moving forward, gaps held.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startConsumer } from '../../src/consume/index.ts'
import * as metrics from '../../src/consume/metrics.ts'
import type { Role } from '../../src/runtime.ts'
import { createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { DAYS_COLLECTION } from '../../src/consume/history.ts'
import { event, history, message, publish, stateOf, storeOf, versions } from './support.ts'
import { renderMetrics } from '../../src/metrics.ts'
import { sample } from '../support/ops.ts'

/** Events observed by the commit → history histogram for a table (stored ones; a duplicate is not stored again). */
const delays = (table: string) => ({
  count: sample(renderMetrics(), 'cdc_consume_commit_to_history_seconds_count', { table }) ?? 0,
  sum: sample(renderMetrics(), 'cdc_consume_commit_to_history_seconds_sum', { table }) ?? 0,
})

let env: TestEnv
let consumer: Role

beforeAll(async () => {
  env = await createTestEnv()
  consumer = await startConsumer(env.rt)
})

afterAll(async () => {
  await consumer?.stop()
  await env?.cleanup()
})

describe('consume', () => {
  test('stores each event once in <table>_history with its Kafka position, and the latest image in <table>_state', async () => {
    const events = [...versions('customers', 'c1', 1, 3), ...versions('customers', 'c2', 1, 2)]
    const delaysBefore = delays('customers')
    await publish(env, events.map((e) => message(env, e)))
    const docs = await eventually(async () => {
      const d = await history(env, 'customers', { 'aggregate.id': { $in: ['c1', 'c2'] } })
      return d.length === 5 && d
    })
    expect(docs.map((d) => `${(d.aggregate as { id: string }).id}@${d.version}`)).toEqual(['c1@1', 'c1@2', 'c1@3', 'c2@1', 'c2@2'])
    const first = docs[0]!
    expect(first._id).toBe(events[0]!.id)
    expect(first.kafka).toMatchObject({ topic: `${env.tag}.customers`, offset: expect.any(String), partition: expect.any(Number) })
    expect(typeof first.storedAt).toBe('string')
    expect(first.changes).toEqual(events[0]!.changes)
    // Each stored event observed how long after its transaction it was stored (these were captured days ago).
    await eventually(async () => delays('customers').count - delaysBefore.count === 5)
    const stored = docs.reduce((n, d) => n + (Date.parse(String(d.storedAt)) - Date.parse(String(d.occurredAt))) / 1000, 0)
    expect(delays('customers').sum - delaysBefore.sum).toBeCloseTo(stored, 3)
    // The read keys that make history reads index-served, and the day bucket recorded for the audit search.
    const day = events[0]!.occurredAt.slice(0, 10)
    expect(first).toMatchObject({ aggKey: 'c1', day, actorDay: `${day} tester`, txId: events[0]!.tx.id })
    expect(await storeOf(env).collection(DAYS_COLLECTION).findOne({ _id: JSON.stringify(['customers', 'tester', day]) })).not.toBeNull()
    const state = await eventually(async () => {
      const s = await stateOf(env, 'customers', 'c1')
      return s?.version === 3 && s
    })
    expect(state).toMatchObject({ _id: 'c1', version: 3, deleted: false, row: { id: 'c1', name: 'v3' }, eventId: events[2]!.id })
    // The unique (aggregate.id, version) index exists: another document claiming c1@1 is refused.
    const store = await env.rt.mongo()
    const clash = await store.collection('customers_history').insertMany([{ _id: 'other', aggregate: { id: 'c1' }, version: 1 }])
    expect(clash.duplicates).toEqual([0])
  })

  test('a redelivered batch (the same events again) is stored once and counted as duplicates', async () => {
    const events = versions('customers', 'dup', 1, 4)
    const before = metrics.duplicates.get({ table: 'customers' })
    await publish(env, events.map((e) => message(env, e)))
    await eventually(async () => (await history(env, 'customers', { 'aggregate.id': 'dup' })).length === 4)
    const observed = delays('customers').count
    await publish(env, events.map((e) => message(env, e)))
    await eventually(async () => metrics.duplicates.get({ table: 'customers' }) - before >= 4)
    expect(delays('customers').count).toBe(observed)
    expect(await history(env, 'customers', { 'aggregate.id': 'dup' })).toHaveLength(4)
    expect((await stateOf(env, 'customers', 'dup'))?.version).toBe(4)
  })

  test('an older version replayed after newer ones never rolls the state back', async () => {
    const events = versions('products', 'p1', 1, 3)
    await publish(env, events.map((e) => message(env, e)))
    await eventually(async () => (await stateOf(env, 'products', 'p1'))?.version === 3)
    const late = event('products', 'p1', 2) // a different event id claiming version 2: must not move the state
    await publish(env, [message(env, events[1]!), message(env, late)])
    const marker = event('products', 'p-marker', 1)
    await publish(env, [message(env, marker)])
    await eventually(async () => (await stateOf(env, 'products', 'p-marker')) !== null)
    await Bun.sleep(300)
    expect(await stateOf(env, 'products', 'p1')).toMatchObject({ version: 3, row: { name: 'v3' } })
  })

  test('a delete marks the state deleted and keeps the last image', async () => {
    const [c, u] = versions('orders', 'o1', 1, 2)
    const d = event('orders', 'o1', 3, { type: 'OrdersDeleted', op: 'd', after: null, changes: [], before: { id: 'o1', name: 'v2' } })
    await publish(env, [c, u, d].map((e) => message(env, e!)))
    const state = await eventually(async () => {
      const s = await stateOf(env, 'orders', 'o1')
      return s?.version === 3 && s
    })
    expect(state).toMatchObject({ deleted: true, row: { id: 'o1', name: 'v2' } })
  })

  test('a version gap is counted and holds the state until the missing version arrives', async () => {
    const [v1, v2, v3, v4] = versions('customers', 'gap', 1, 4)
    const gapsBefore = metrics.gaps.get({ table: 'customers' })
    await publish(env, [message(env, v1!)])
    await eventually(async () => (await stateOf(env, 'customers', 'gap'))?.version === 1)
    await publish(env, [message(env, v3!), message(env, v4!)])
    await eventually(async () => (await history(env, 'customers', { 'aggregate.id': 'gap' })).length === 3)
    await eventually(async () => metrics.gaps.get({ table: 'customers' }) > gapsBefore)
    const store = await env.rt.mongo()
    expect(await store.collection('cdc_gaps').findOne({ _id: 'customers/gap' })).toMatchObject({ stateVersion: 1, missing: 2, seenUpTo: 4 })
    expect((await stateOf(env, 'customers', 'gap'))?.version).toBe(1)
    await publish(env, [message(env, v2!)])
    const state = await eventually(async () => {
      const s = await stateOf(env, 'customers', 'gap')
      return s?.version === 4 && s
    })
    expect(state.row).toEqual({ id: 'gap', name: 'v4' })
    await eventually(async () => (await store.collection('cdc_gaps').findOne({ _id: 'customers/gap' })) === null)
  })

  test('an aggregate first seen at version > 1 is a gap, not a new state', async () => {
    const [, v2] = versions('products', 'late-start', 1, 2)
    await publish(env, [message(env, v2!)])
    await eventually(async () => (await history(env, 'products', { 'aggregate.id': 'late-start' })).length === 1)
    const store = await env.rt.mongo()
    await eventually(async () => (await store.collection('cdc_gaps').findOne({ _id: 'products/late-start' })) !== null)
    expect(await stateOf(env, 'products', 'late-start')).toBeNull()
  })
})
