// Kafka stopped long enough for the consumer's watchdog to replace its kafkajs member while the broker is away (the
// replacement fails, then succeeds while the group is still slow to form): afterwards one member holds every partition
// and commits everything. A replaced member that joined anyway used to hold a share of the partitions and never commit
// them (the 100,000-event chaos run: consumer lag stuck at 14,071 after a Kafka restart).
import { afterAll, beforeAll, expect, test } from 'bun:test'
import type { Consumer, InMessage } from '../../src/clients/kafka.ts'
import { createTestEnv, eventually, stackCtl, type TestEnv } from '../support/env.ts'

let env: TestEnv
let consumer: Consumer | undefined

beforeAll(async () => {
  env = await createTestEnv()
})
afterAll(async () => {
  await stackCtl('up', 'kafka')
  await consumer?.stop()
  await env?.cleanup()
}, 60_000)

test('after a Kafka outage that outlasts the watchdog, one member consumes and commits every partition', async () => {
  const kafka = env.rt.kafka()
  const topic = `${env.tag}.outage`
  const groupId = `${env.tag}-outage`
  await kafka.ensureTopics([{ topic, partitions: 3, replicationFactor: 1 }])
  const seen = new Set<string>()
  consumer = await kafka.consumer({ groupId, topics: [topic], sessionTimeoutMs: 6000, partitionsConsumedConcurrently: 3 })
  const c = consumer
  void c.run(async (batch) => {
    batch.messages.forEach((m: InMessage) => seen.add(m.value!.toString()))
    const last = batch.messages.at(-1)
    if (last && batch.isRunning()) await c.commit([{ topic, partition: batch.partition, offset: String(Number(last.offset) + 1) }])
  })
  // (retried: right after a restart the broker answers "not the leader" until it has loaded its partitions)
  const send = (from: number) =>
    eventually(async () => {
      const producer = await kafka.producer()
      try {
        await producer.send(Array.from({ length: 30 }, (_, i) => ({ topic, key: `k${from + i}`, value: `m${from + i}` })))
        return true
      } finally {
        await producer.disconnect().catch(() => {})
      }
    }, 120_000, 1000)
  await send(0)
  await eventually(async () => seen.size === 30, 30_000)

  await stackCtl('down', 'kafka')
  try {
    // the watchdog replaces a member that shows no sign of life for 20 s
    await Bun.sleep(45_000)
  } finally {
    await stackCtl('up', 'kafka')
  }
  await send(30)
  await eventually(async () => seen.size === 60, 120_000, 500)
  const caughtUp = async () => (await kafka.lag(groupId, topic)).every((p) => p.committed === p.end)
  await eventually(caughtUp, 60_000, 500)
  // and it stays so: no member nobody owns takes partitions over later
  await Bun.sleep(15_000)
  await send(60)
  await eventually(async () => seen.size === 90 && (await caughtUp()), 60_000, 500)
}, 300_000)
