// The processing-outcome log against the real stack. The scenario (an honest one the consumer supports): on topic
// `pricing` key p1, product event H is poison because products are not a consumed table yet, so it is dead-lettered
// and the promotion event E behind it (same topic and key) is parked. Fix 1 (consume products) + redrive: H is
// stored, but E now fails on its own (promotions are not consumed either) and is dead-lettered. Fix 2 + redrive: E
// is stored. E's trail: parked → redriven → dead-lettered → redriven → stored.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startConsumer } from '../../src/consume/index.ts'
import { OUTCOMES_COLLECTION, pruneOutcomes } from '../../src/consume/outcomes.ts'
import { createApp } from '../../src/api/app.ts'
import { dlqAdmin } from '../../src/api/server.ts'
import { redrive } from '../../src/redrive/index.ts'
import type { Role } from '../../src/runtime.ts'
import { createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { event, history, message, publish, storeOf } from '../consume/support.ts'

let env: TestEnv
let consumer: Role | undefined
let pricing: string
let app: ReturnType<typeof createApp>

beforeAll(async () => {
  env = await createTestEnv((c) => {
    const topic = c.kafka.topicTemplate.replace('{table}', 'pricing')
    c.kafka.topics = { ProductRepriced: topic, PromotionStarted: topic }
    c.consume.tables = ['customers']
  })
  pricing = env.config.kafka.topics.ProductRepriced!
  const rt = env.rt
  app = createApp({ config: rt.config, log: rt.log, db: rt.db, kafka: rt.kafka, mongo: rt.mongo, tracked: rt.tracked, dlq: dlqAdmin(rt) })
  consumer = await startConsumer(env.rt)
})

afterAll(async () => {
  await consumer?.stop()
  await env?.cleanup()
})

/** Stops only after every batch was committed: a stop between the writes and the commit means redelivery. */
async function restartWith(tables: string[], outcomes: 'off' | 'failures' | 'all' = 'failures') {
  const kafka = env.rt.kafka()
  await eventually(async () => {
    for (const topic of [pricing, `${env.tag}.customers`]) {
      if ((await kafka.lag(env.config.consume.groupId, topic)).some((p) => p.end > p.committed)) return false
    }
    return true
  }, 30_000)
  await consumer!.stop()
  env.config.consume.tables = tables
  env.config.consume.outcomes = outcomes
  consumer = await startConsumer(env.rt)
}

const get = async (path: string) => {
  const res = await app.request(path)
  return { status: res.status, body: (await res.json()) as any }
}
const trail = async (id: string) => (await get(`/events/${id}/outcome`)).body.outcomes?.map((o: any) => o.outcome) as string[] | undefined
async function trailIs(id: string, expected: string[]) {
  const reached = await eventually(async () => JSON.stringify(await trail(id)) === JSON.stringify(expected), 30_000).catch(() => false)
  if (!reached) expect(await get(`/events/${id}/outcome`)).toEqual({ status: 200, body: expected })
}

const H = event('products', 'p1', 1, { type: 'ProductRepriced' })
const E = event('promotions', 'p1', 1, { type: 'PromotionStarted', aggregate: { type: 'promotions', id: 'p1' } })

describe('outcome trail of a poisoned-then-redriven event', () => {
  test('dead-lettered head and parked follower are logged with their errors; GET /dlq links to them', async () => {
    await publish(env, [message(env, H, pricing), message(env, E, pricing)])
    await trailIs(H.id, ['dead-lettered'])
    await trailIs(E.id, ['parked'])
    const h = await get(`/events/${H.id}/outcome`)
    expect(h.body.outcomes[0]).toMatchObject({ outcome: 'dead-lettered', topic: pricing, partition: expect.any(Number), offset: expect.stringMatching(/^\d+$/) })
    expect(h.body.outcomes[0].error).toContain('"products" is not a consumed table')
    expect((await get(`/events/${E.id}/outcome`)).body.outcomes[0].error).toBe(`parked behind ${H.id}`)
    // The batch writes its outcomes and sends its dead letters at the same time (both before its offsets commit), so
    // the trail can show before the dead-letter topic does.
    const listed = async () => (await get(`/dlq?topic=${pricing}`)).body.items.map((i: any) => i.outcomeUrl)
    const expected = [`/events/${H.id}/outcome`, `/events/${E.id}/outcome`]
    await eventually(async () => JSON.stringify(await listed()) === JSON.stringify(expected), 30_000).catch(() => {})
    expect(await listed()).toEqual(expected)
  }, 60_000)

  test('fix 1 + redrive: the head is stored; the follower fails on its own and is dead-lettered', async () => {
    await restartWith(['customers', 'products'])
    expect((await redrive(env.rt, { topic: pricing })).redriven).toBe(2)
    await trailIs(H.id, ['dead-lettered', 'redriven', 'stored'])
    await trailIs(E.id, ['parked', 'redriven', 'dead-lettered'])
    const e = (await get(`/events/${E.id}/outcome`)).body.outcomes
    expect(e[1]).toMatchObject({ outcome: 'redriven', topic: `${pricing}.dlq`, redriveCount: 1 })
    expect(e[2]).toMatchObject({ outcome: 'dead-lettered', topic: pricing, redriveCount: 1 })
    expect(e[2].error).toContain('"promotions" is not a consumed table')
  }, 90_000)

  test('fix 2 + redrive: parked → redriven → dead-lettered → redriven → stored; counted in the metrics', async () => {
    await restartWith(['customers', 'products', 'promotions'])
    expect((await redrive(env.rt, { topic: pricing })).redriven).toBe(1)
    await trailIs(E.id, ['parked', 'redriven', 'dead-lettered', 'redriven', 'stored'])
    const stored = (await get(`/events/${E.id}/outcome`)).body.outcomes.at(-1)
    const [doc] = (await history(env, 'promotions', { _id: E.id })) as { kafka: { topic: string; partition: number; offset: string } }[]
    // A store after a redrive is logged even with outcomes = "failures", at the redriven message's position.
    expect(stored).toMatchObject({ topic: doc!.kafka.topic, partition: doc!.kafka.partition, offset: doc!.kafka.offset, redriveCount: 2 })
    const metrics = await (await app.request('/metrics')).text()
    for (const outcome of ['dead-lettered', 'parked', 'redriven', 'stored']) {
      expect(metrics).toMatch(new RegExp(`cdc_consume_outcomes_total\\{outcome="${outcome}"\\} [1-9]`))
    }
  }, 90_000)
})

describe('duplicates, modes and retention', () => {
  const topic = () => `${env.tag}.customers`

  test('a redelivered event is logged as duplicate; the stored one is read from its history document', async () => {
    const c = event('customers', 'dup1', 1)
    await publish(env, [message(env, c)])
    await trailIs(c.id, ['stored'])
    await publish(env, [message(env, c)])
    await trailIs(c.id, ['stored', 'duplicate'])
    const stored = await storeOf(env).collection(OUTCOMES_COLLECTION).count({ eventId: c.id, outcome: 'stored' })
    expect(stored).toBe(0)
  }, 60_000)

  test('outcomes = "all" logs every store; "off" logs nothing', async () => {
    await restartWith(['customers', 'products', 'promotions'], 'all')
    const a = event('customers', 'all1', 1)
    await publish(env, [message(env, a)])
    await eventually(async () => (await storeOf(env).collection(OUTCOMES_COLLECTION).count({ eventId: a.id, outcome: 'stored' })) === 1, 30_000)

    await restartWith(['customers', 'products', 'promotions'], 'off')
    const poison = { topic: topic(), key: 'off1', value: '{nope', headers: { 'cdc-event-id': 'off-poison' } }
    const b = event('customers', 'off2', 1)
    await publish(env, [poison, message(env, b), message(env, b)])
    await eventually(async () => (await history(env, 'customers', { _id: b.id })).length === 1, 30_000)
    // Wait until the poison passed too (its DLQ copy exists), then nothing of either is in the log.
    await eventually(async () => (await get(`/dlq?aggregate=off1`)).body.items.length === 1, 30_000)
    expect(await storeOf(env).collection(OUTCOMES_COLLECTION).count({ eventId: { $in: ['off-poison', b.id] } })).toBe(0)
    expect(await trail(b.id)).toEqual(['stored'])
  }, 90_000)

  test('retention deletes outcomes older than consume.outcomeRetentionDays, also when the consumer starts', async () => {
    const store = storeOf(env)
    const old = (n: number) => ({
      _id: `parked:${topic()}:0:${n}`,
      eventId: `old-${n}`,
      outcome: 'parked',
      at: new Date(Date.now() - (env.config.consume.outcomeRetentionDays + 1) * 86_400_000).toISOString(),
      topic: topic(),
      partition: 0,
      offset: String(n),
    })
    await store.collection(OUTCOMES_COLLECTION).insertMany([old(1), old(2)])
    const before = await store.collection(OUTCOMES_COLLECTION).count({})
    expect(await pruneOutcomes(store, env.config.consume.outcomeRetentionDays)).toBe(2)
    expect(await store.collection(OUTCOMES_COLLECTION).count({})).toBe(before - 2)

    await store.collection(OUTCOMES_COLLECTION).insertMany([old(3)])
    await restartWith(['customers', 'products', 'promotions'])
    await eventually(async () => (await store.collection(OUTCOMES_COLLECTION).count({ eventId: 'old-3' })) === 0, 20_000)
    expect(await store.collection(OUTCOMES_COLLECTION).count({})).toBe(before - 2)
  }, 90_000)
})
