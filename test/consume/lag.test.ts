// Consumer lag against the real broker: a caught-up group commits the high watermark, transaction markers included,
// so lag = end offset − committed offset (the arithmetic of `kafka-consumer-groups`) is 0, not 1 per partition. The end
// offset is the last stable offset (what read_committed can read), which equals the high watermark unless a
// transaction is open.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startConsumer } from '../../src/consume/index.ts'
import * as metrics from '../../src/consume/metrics.ts'
import type { Role } from '../../src/runtime.ts'
import { createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { ensureTopics, history, message, versions } from './support.ts'

let env: TestEnv
let consumer: Role
let topic: string

beforeAll(async () => {
  env = await createTestEnv((c) => (c.consume.tables = ['customers']))
  topic = `${env.tag}.customers`
  await ensureTopics(env, [topic, `${topic}.dlq`])
  consumer = await startConsumer(env.rt)
})

afterAll(async () => {
  await consumer?.stop()
  await env?.cleanup()
})

/** Every partition's committed offset equals its high watermark (and some partition holds records). */
async function caughtUp() {
  const lag = await env.rt.kafka().lag(env.config.consume.groupId, topic)
  return lag.some((p) => p.end > 0) && lag.every((p) => p.end - p.committed === 0) && lag
}

describe('consumer lag with transaction markers', () => {
  test('committed transactions: every partition reaches lag 0, markers included', async () => {
    const producer = await env.rt.kafka().transactionalProducer(`${env.tag}-lag`)
    try {
      for (const id of ['a', 'b', 'c', 'd']) await producer.sendInTransaction(versions('customers', id, 1, 3).map((e) => message(env, e)))
    } finally {
      await producer.disconnect()
    }
    await eventually(async () => (await history(env, 'customers')).length === 12)
    const lag = await eventually(caughtUp, 30_000, 250)
    // Each transaction wrote 3 records and 1 marker; the partition ends past the marker and the group with it.
    expect(lag.reduce((n, p) => n + p.end, 0)).toBe(16)
  })

  test('an aborted transaction at the end of a partition (a fetch of filtered records only) is committed past too', async () => {
    const producer = await env.rt.kafka().transactionalProducer(`${env.tag}-abort`)
    try {
      const doomed = producer.sendInTransaction(versions('customers', 'x', 1, 2).map((e) => message(env, e)), async () => {
        throw new Error('abort on purpose')
      })
      await expect(doomed).rejects.toThrow('abort on purpose')
    } finally {
      await producer.disconnect()
    }
    // The abort marker is written after EndTxn answers: wait until the partition's stable end includes it.
    const lag = await eventually(async () => {
      const l = await caughtUp()
      return l && l.reduce((n, p) => n + p.end, 0) === 16 + 3 && l
    }, 30_000, 250)
    expect(lag.every((p) => p.committed === p.end)).toBe(true)
    expect(await history(env, 'customers', { 'aggregate.id': 'x' })).toHaveLength(0)
  })

  test('the cdc_consume_lag gauge reads 0 for every partition', async () => {
    await eventually(async () => {
      const values = [0, 1, 2].map((partition) => metrics.lag.get({ topic, partition }))
      return metrics.lag.render().includes(topic) && values.every((v) => v === 0)
    }, 30_000, 500)
  })
})
