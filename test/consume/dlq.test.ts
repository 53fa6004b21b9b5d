// Poison messages: to the DLQ with their error, the aggregate's later messages parked behind them in order, every
// other aggregate flowing; after the fix, redrive completes the history in version order.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { startConsumer } from '../../src/consume/index.ts'
import { DlqHeaders, EventHeaders } from '../../src/events.ts'
import { listDlq, redrive } from '../../src/redrive/index.ts'
import type { Role } from '../../src/runtime.ts'
import { createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { ensureTopics, event, history, message, publish, readAll, stateOf, versions } from './support.ts'

let env: TestEnv
let consumer: Role | undefined
let pricing: string

beforeAll(async () => {
  // Misconfigured on purpose: product repricings go to their own topic, but products are not a consumed table yet,
  // so those events are poison until the config is fixed.
  env = await createTestEnv((c) => {
    c.kafka.topics = { ProductRepriced: `${c.kafka.topicTemplate.replace('{table}', 'pricing')}` }
    c.consume.tables = ['customers']
  })
  pricing = env.config.kafka.topics.ProductRepriced!
  consumer = await startConsumer(env.rt)
})

afterAll(async () => {
  await consumer?.stop()
  await env?.cleanup()
})

const repriced = (id: string, version: number) => event('products', id, version, { type: 'ProductRepriced' })

describe('dead letters and redrive', () => {
  test('undecodable and invalid messages go to <topic>.dlq with the DLQ headers; other aggregates keep flowing', async () => {
    const topic = `${env.tag}.customers`
    const good = versions('customers', 'ok1', 1, 2)
    const invalid = { ...event('customers', 'bad2', 1), version: 0 }
    await publish(env, [
      { topic, key: 'bad1', value: '{not json', headers: { [EventHeaders.id]: 'not-an-id' } },
      message(env, invalid as never),
      ...good.map((e) => message(env, e)),
    ])
    await eventually(async () => (await stateOf(env, 'customers', 'ok1'))?.version === 2)
    const dlq = await eventually(async () => {
      const all = await readAll(env, `${topic}.dlq`)
      return all.length === 2 && all
    })
    const byKey = Object.fromEntries(dlq.map((m) => [m.key, m]))
    expect(byKey.bad1!.value!.toString()).toBe('{not json')
    expect(byKey.bad1!.headers).toMatchObject({
      [EventHeaders.id]: 'not-an-id',
      [DlqHeaders.topic]: topic,
      [DlqHeaders.group]: env.config.consume.groupId,
      [DlqHeaders.redriveCount]: '0',
    })
    expect(byKey.bad1!.headers[DlqHeaders.error]).toContain('undecodable JSON')
    expect(Number(byKey.bad1!.headers[DlqHeaders.partition])).toBeGreaterThanOrEqual(0)
    expect(byKey.bad1!.headers[DlqHeaders.offset]).toMatch(/^\d+$/)
    expect(Date.parse(byKey.bad1!.headers[DlqHeaders.at]!)).toBeGreaterThan(0)
    expect(byKey.bad2!.headers[DlqHeaders.error]).toContain('invalid envelope: version')
    expect(await history(env, 'customers', { 'aggregate.id': { $in: ['bad1', 'bad2'] } })).toEqual([])
  }, 60_000)

  test('an event MongoDB rejects for good (a field name with a dot) is dead-lettered; the rest of the batch is stored', async () => {
    const topic = `${env.tag}.customers`
    const rejected = event('customers', 'dotted', 1, { after: { id: 'dotted', 'e.mail': 'x' } })
    const fine = versions('customers', 'fine', 1, 2)
    await publish(env, [message(env, fine[0]!), message(env, rejected), message(env, fine[1]!)])
    await eventually(async () => (await stateOf(env, 'customers', 'fine'))?.version === 2)
    const dead = await eventually(async () => (await readAll(env, `${topic}.dlq`)).find((m) => m.key === 'dotted'))
    expect(dead.headers[DlqHeaders.error]).toContain('history write rejected')
    expect(await history(env, 'customers', { 'aggregate.id': 'dotted' })).toEqual([])
  }, 60_000)

  test('later messages of a dead-lettered aggregate are parked behind it, in order; the park is durable', async () => {
    const store = await env.rt.mongo()
    await publish(env, [repriced('p1', 1), repriced('p1', 2), repriced('p1', 3)].map((e) => message(env, e, pricing)))
    const dlq = await eventually(async () => {
      const all = (await readAll(env, `${pricing}.dlq`)).filter((m) => m.key === 'p1')
      return all.length === 3 && all
    })
    expect(dlq.map((m) => m.headers[EventHeaders.version])).toEqual(['1', '2', '3'])
    expect(dlq[0]!.headers[DlqHeaders.error]).toContain('"products" is not a consumed table')
    expect(dlq[0]!.headers[DlqHeaders.parked]).toBeUndefined()
    expect(dlq[1]!.headers[DlqHeaders.error]).toBe(`parked behind ${dlq[0]!.headers[EventHeaders.id]}`)
    expect(dlq[2]!.headers[DlqHeaders.parked]).toBe('true')
    expect(await store.collection('cdc_parked').findOne({ _id: `${pricing}/p1` })).toMatchObject({ head: dlq[0]!.headers[EventHeaders.id] })
    const listed = await listDlq(env.rt, { topic: pricing, aggregate: 'p1' })
    expect(listed.items.map((e) => [e.parked, e.eventType, e.origin.topic])).toEqual([
      [false, 'ProductRepriced', pricing],
      [true, 'ProductRepriced', pricing],
      [true, 'ProductRepriced', pricing],
    ])
    const page = await listDlq(env.rt, { limit: 2 })
    expect(page.items).toHaveLength(2)
    const rest = await listDlq(env.rt, { limit: 10, cursor: page.nextCursor! })
    expect(rest.items.length).toBe(4)
    expect(rest.nextCursor).toBeNull()
  }, 60_000)

  test('after the fix, redrive completes the history in version order and lifts the park; never twice', async () => {
    // A new message of p1 while it is parked: it waits too.
    await publish(env, [message(env, repriced('p1', 4), pricing)])
    await eventually(async () => (await readAll(env, `${pricing}.dlq`)).length === 4)
    const dry = await redrive(env.rt, { topic: pricing, dryRun: true })
    expect(dry.items.map((i) => i.action)).toEqual(['would-redrive', 'would-redrive', 'would-redrive', 'would-redrive'])
    expect(dry.redriven).toBe(0)

    // The fix: products become a consumed table.
    await consumer!.stop()
    env.config.consume.tables = ['customers', 'products']
    consumer = await startConsumer(env.rt)

    const report = await redrive(env.rt, { topic: pricing })
    expect(report.redriven).toBe(4)
    const docs = await eventually(async () => {
      const d = await history(env, 'products', { 'aggregate.id': 'p1' })
      return d.length === 4 && d
    })
    expect(docs.map((d) => d.version)).toEqual([1, 2, 3, 4])
    await eventually(async () => (await stateOf(env, 'products', 'p1'))?.version === 4)
    const store = await env.rt.mongo()
    await eventually(async () => (await store.collection('cdc_parked').findOne({ _id: `${pricing}/p1` })) === null)

    // Flowing again: a new message is stored directly.
    await publish(env, [message(env, repriced('p1', 5), pricing)])
    await eventually(async () => (await stateOf(env, 'products', 'p1'))?.version === 5)
    expect((await redrive(env.rt, { topic: pricing })).redriven).toBe(0)
    expect((await listDlq(env.rt, { topic: pricing })).items).toEqual([])
    expect((await listDlq(env.rt, { topic: pricing, includeRedriven: true })).items).toHaveLength(4)
  }, 60_000)

  test('a message that fails again is dead-lettered with its redrive count; past redrive.maxRedrives it stays', async () => {
    const topic = `${env.tag}.customers`
    env.config.redrive.maxRedrives = 2
    for (let round = 1; round <= 2; round++) {
      const r = await redrive(env.rt, { topic, aggregate: 'bad1' })
      expect(r.redriven).toBe(1)
      await eventually(async () => {
        const all = await readAll(env, `${topic}.dlq`)
        return all.some((m) => m.key === 'bad1' && m.headers[DlqHeaders.redriveCount] === String(round))
      })
    }
    const third = await redrive(env.rt, { topic, aggregate: 'bad1' })
    expect(third).toMatchObject({ redriven: 0, kept: 1 })
    expect(third.items[0]).toMatchObject({ action: 'kept-max-redrives', redriveCount: 2 })
  }, 60_000)
})
