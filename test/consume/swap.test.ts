// A read model swapped or dropped under a busy consumer (a `cdc replay` swapping in its rebuilt collections, an
// operator dropping one by hand): the writes that meet the collection gone are retried, not dead-lettered. On FerretDB
// a write to a collection dropped or renamed under it fails with PostgreSQL's undefined_table (42P01); isolating its
// messages as poison parked their aggregates in the DLQ (CI lost a replay's events this way).
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { startConsumer } from '../../src/consume/index.ts'
import type { Role } from '../../src/runtime.ts'
import { createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { ensureTopics, event, message, publish, readAll, stateOf, storeOf } from './support.ts'

let env: TestEnv
let consumer: Role | undefined

beforeAll(async () => {
  env = await createTestEnv((c) => {
    c.consume.tables = ['customers']
  })
  await ensureTopics(env, [`${env.tag}.customers`])
  consumer = await startConsumer(env.rt)
})

afterAll(async () => {
  await consumer?.stop()
  await env?.cleanup()
})

test('collections swapped and dropped under the consumer: nothing is dead-lettered, and it keeps storing', async () => {
  const store = storeOf(env)
  const topic = `${env.tag}.customers`
  let writing = true
  // One message per send, 12 aggregates in turn: many small batches, so the consumer writes all the time.
  const producer = await env.rt.kafka().producer()
  const publisher = (async () => {
    let n = 0
    for (let version = 1; writing; version++) {
      for (let a = 0; a < 12 && writing; a++, n++) await producer.send([message(env, event('customers', `a${a}`, version))])
    }
    return n
  })()
  await eventually(async () => (await stateOf(env, 'customers', 'a0')) !== null)
  // What a replay's swap does on each server, over and over; then what an operator's drop does, as often.
  for (let i = 0; i < 20; i++) {
    for (const name of ['customers_history', 'customers_state']) {
      await store.collection(`${name}__swap`).insertMany([{ _id: `swap${i}` }])
      await store.collection(`${name}__swap`).renameTo(name)
    }
    await Bun.sleep(20)
  }
  for (let i = 0; i < 100; i++) {
    for (const name of ['customers_history', 'customers_state']) await store.collection(name).drop()
    await Bun.sleep(10)
  }
  writing = false
  expect(await publisher).toBeGreaterThan(50)
  await producer.disconnect()
  // Events published once the swapping stopped are stored as ever.
  const late = [1, 2, 3].map((v) => event('customers', 'late', v))
  await publish(env, late.map((e) => message(env, e)))
  await eventually(async () => (await stateOf(env, 'customers', 'late'))?.version === 3, 30_000)
  expect(await readAll(env, `${topic}.dlq`)).toEqual([])
}, 120_000)
