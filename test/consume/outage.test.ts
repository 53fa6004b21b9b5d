// MongoDB stopped and restarted mid-stream: the consumer retries with capped backoff, commits nothing meanwhile,
// and afterwards every event is in the history exactly once.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startConsumer } from '../../src/consume/index.ts'
import * as metrics from '../../src/consume/metrics.ts'
import type { Role } from '../../src/runtime.ts'
import { createTestEnv, eventually, stackCtl, type TestEnv } from '../support/env.ts'
import { history, message, publish, stateOf, versions } from './support.ts'

let env: TestEnv
let consumer: Role


beforeAll(async () => {
  env = await createTestEnv((c) => {
    c.consume.retryMaxMs = 1000
  })
  consumer = await startConsumer(env.rt)
})

afterAll(async () => {
  await consumer?.stop()
  await env?.cleanup()
})

describe('MongoDB outage', () => {
  test('events published while MongoDB is down are stored once it is back; nothing is lost or doubled', async () => {
    const ids = ['m1', 'm2', 'm3', 'm4', 'm5']
    const all = ids.map((id) => versions('customers', id, 1, 6))
    await publish(env, all.flatMap((e) => e.slice(0, 3)).map((e) => message(env, e)))
    await eventually(async () => (await history(env, 'customers')).length === 15)
    const retriesBefore = metrics.retries.get({ kind: 'unreachable' })
    const lag = () => env.rt.kafka().lag(env.config.consume.groupId, `${env.tag}.customers`)
    const committed = async () => (await lag()).map((p) => [p.partition, p.committed])
    // The offset commit follows the MongoDB write, so seeing the documents is not enough: wait for the commits too.
    await eventually(async () => (await lag()).every((p) => p.committed === p.end))
    const committedBefore = await committed()
    try {
      await stackCtl('down', 'mongo')
      await publish(env, all.flatMap((e) => e.slice(3)).map((e) => message(env, e)))
      await eventually(async () => metrics.retries.get({ kind: 'unreachable' }) > retriesBefore, 30_000)
      // Visibly stuck, not the messages' fault: nothing dead-lettered.
      const topic = `${env.tag}.customers`
      expect(await eventually(async () => [0, 1, 2, 3, 4, 5].some((p) => metrics.stalled.get({ topic, partition: String(p) }) === 1))).toBe(true)
      expect(metrics.deadLettered.get({ topic })).toBe(0)
      // Nothing committed while the writes cannot happen.
      // Down a little longer: the backoff keeps retrying, and still nothing is committed.
      await Bun.sleep(2_000)
      expect(await committed()).toEqual(committedBefore)
    } finally {
      await stackCtl('up', 'mongo')
    }
    const docs = await eventually(async () => {
      const d = await history(env, 'customers')
      return d.length >= 30 && d
    }, 60_000)
    expect(docs).toHaveLength(30)
    for (const id of ids) await eventually(async () => (await stateOf(env, 'customers', id))?.version === 6, 30_000)
    const topic = `${env.tag}.customers`
    await eventually(async () => [0, 1, 2, 3, 4, 5].every((p) => !metrics.stalled.get({ topic, partition: String(p) })))
  }, 150_000)
})
