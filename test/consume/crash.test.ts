// kill -9 of the consumer process between the MongoDB write and the offset commit, and at random moments under
// load: every event is still in the history exactly once and the read model ends at the last version.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Subprocess } from 'bun'
import { createTestEnv, eventually, ROOT, type TestEnv } from '../support/env.ts'
import { stackConfigEnv } from '../support/stack-env.ts'
import { ensureTopics, history, message, publish, versions } from './support.ts'

let env: TestEnv
const children = new Set<Subprocess>()

beforeAll(async () => {
  env = await createTestEnv()
  await ensureTopics(env, [`${env.tag}.customers`])
})

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL')
  await env?.cleanup()
})

/** `cdc consume`, or with `crashAfterWrite` the test entry that kill -9s itself between the writes and the commit. */
function spawnConsumer(crashAfterWrite = false) {
  const entry = crashAfterWrite ? ['test/consume/crash-after-write.ts'] : ['src/cli.ts', 'consume']
  const child = Bun.spawn(['bun', 'run', ...entry], {
    cwd: ROOT,
    env: {
      ...process.env,
      ...stackConfigEnv(),
      CDC_KAFKA_TOPIC_TEMPLATE: env.config.kafka.topicTemplate,
      CDC_KAFKA_CLIENT_ID: env.config.kafka.clientId,
      CDC_MONGO_DATABASE: env.config.mongo.database,
      CDC_CONSUME_GROUP_ID: env.config.consume.groupId,
      CDC_LOG_LEVEL: 'warn',
      // the demo's tables are the ones consumed (capture.tracked)
      CDC_DEMO_ENABLED: 'true',
    },
    stdout: 'ignore',
    stderr: process.env.CDC_TEST_LOG === '1' ? 'inherit' : 'ignore',
  })
  children.add(child)
  void child.exited.then(() => children.delete(child))
  return child
}

async function committed() {
  const lag = await env.rt.kafka().lag(env.config.consume.groupId, `${env.tag}.customers`)
  return lag.reduce((n, p) => n + p.committed, 0)
}

async function expectExactlyOnce(ids: string[], count: number, lastVersion: number) {
  const docs = await eventually(async () => {
    const d = await history(env, 'customers', { 'aggregate.id': { $in: ids } })
    return d.length >= count && d
  }, 60_000)
  expect(docs).toHaveLength(count)
  expect(new Set(docs.map((d) => d._id)).size).toBe(count)
  const store = await env.rt.mongo()
  await eventually(async () => {
    const states = await store.collection('customers_state').find({ _id: { $in: ids } })
    return states.length === ids.length && states.every((s) => s.version === lastVersion)
  }, 30_000)
}

describe('consumer crashes', () => {
  test('killed right after the MongoDB write, before the commit: the redelivery is stored once', async () => {
    const ids = Array.from({ length: 10 }, (_, i) => `crash${i}`)
    await publish(env, ids.flatMap((id) => versions('customers', id, 1, 5)).map((e) => message(env, e)))
    const crashing = spawnConsumer(true)
    await crashing.exited
    expect(crashing.signalCode).toBe('SIGKILL')
    expect((await history(env, 'customers', { 'aggregate.id': { $in: ids } })).length).toBeGreaterThan(0)
    expect(await committed()).toBe(0)

    const healthy = spawnConsumer()
    await expectExactlyOnce(ids, 50, 5)
    await eventually(async () => (await committed()) === 50, 60_000)
    healthy.kill('SIGTERM')
    expect(await healthy.exited).toBe(0)
  }, 120_000)

  test('killed at random moments while events stream in: nothing lost, nothing stored twice', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `load${i}`)
    const all = ids.map((id) => versions('customers', id, 1, 25))
    let consumer = spawnConsumer()
    for (let round = 0; round < 5; round++) {
      // Five versions of every aggregate per round, then a kill -9 at a random moment.
      await publish(env, all.flatMap((events) => events.slice(round * 5, round * 5 + 5)).map((e) => message(env, e)))
      await Bun.sleep(300 + Math.random() * 1500)
      consumer.kill('SIGKILL')
      await consumer.exited
      consumer = spawnConsumer()
    }
    await expectExactlyOnce(ids, 40 * 25, 25)
    consumer.kill('SIGTERM')
    expect(await consumer.exited).toBe(0)
  }, 180_000)
})
