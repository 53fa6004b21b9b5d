// Hostile input against the running consumer (issue 13): a string the store refuses inside a valid envelope, a burst
// of garbage on one key whose DLQ copies are larger than one request may be, originals too large for the DLQ, null
// keys and tombstones. Each time the other aggregates keep flowing and every bad message ends up in the DLQ.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { DEFAULT_MAX_SEND_BYTES, type InMessage } from '../../src/clients/kafka.ts'
import { startConsumer } from '../../src/consume/index.ts'
import { DeadLetterSender, deadLetter, type DlqReference } from '../../src/consume/dlq.ts'
import * as metrics from '../../src/consume/metrics.ts'
import { DlqHeaders, EventHeaders } from '../../src/events.ts'
import type { Role } from '../../src/runtime.ts'
import { createTestEnv, eventually, type TestEnv } from '../support/env.ts'
import { ensureTopics, event, history, message, publish, readAll, stateOf, versions } from './support.ts'

let env: TestEnv
let consumer: Role | undefined
let customers: string
let orders: string

beforeAll(async () => {
  env = await createTestEnv((c) => {
    c.consume.tables = ['customers', 'orders']
  })
  customers = `${env.tag}.customers`
  orders = `${env.tag}.orders`
  consumer = await startConsumer(env.rt)
})

afterAll(async () => {
  await consumer?.stop()
  await env?.cleanup()
})

const dlqOf = async (topic: string, key: string | null) => (await readAll(env, `${topic}.dlq`)).filter((m) => m.key === key)

describe('hostile input', () => {
  test('a NUL in the reason is dead-lettered at once (the store refuses it), the rest of its batch and every other aggregate stored, counted once', async () => {
    const storedBefore = metrics.stored.get({ table: 'customers' })
    const duplicatesBefore = metrics.duplicates.get({ table: 'customers' })
    const poisoned = event('customers', 'nul1', 1, { reason: 'ticket\u0000 77' })
    const neighbours = ['n1', 'n2', 'n3', 'n4'].map((id) => versions('customers', id, 1, 3))
    // One burst: the NUL event sits between good events of other aggregates on the same partitions.
    await publish(env, [
      ...neighbours.map((v) => message(env, v[0]!)),
      message(env, poisoned),
      ...neighbours.flatMap((v) => v.slice(1).map((e) => message(env, e))),
    ])
    for (const id of ['n1', 'n2', 'n3', 'n4']) await eventually(async () => (await stateOf(env, 'customers', id))?.version === 3, 30_000)
    await eventually(async () => (await dlqOf(customers, 'nul1')).length === 1, 30_000)
    await publish(env, [message(env, event('customers', 'nul1', 2))])
    const dead = await eventually(async () => {
      const all = await dlqOf(customers, 'nul1')
      return all.length === 2 && all
    }, 30_000)
    expect(dead[0]!.headers[DlqHeaders.error]).toContain('history write rejected')
    expect(dead[0]!.headers[DlqHeaders.parked]).toBeUndefined()
    // Its follower waits behind it, in order.
    expect(dead[1]!.headers[DlqHeaders.parked]).toBe('true')
    expect(JSON.parse(dead[0]!.value!.toString()).reason).toBe('ticket\u0000 77')
    expect(await history(env, 'customers', { 'aggregate.id': 'nul1' })).toEqual([])
    expect(await history(env, 'customers', { 'aggregate.id': { $in: ['n1', 'n2', 'n3', 'n4'] } })).toHaveLength(12)
    // Events, not attempts: 12 stored, no duplicates, although the first insert of the batch failed.
    expect(metrics.stored.get({ table: 'customers' }) - storedBefore).toBe(12)
    expect(metrics.duplicates.get({ table: 'customers' }) - duplicatesBefore).toBe(0)
  }, 60_000)

  test('3,000 non-JSON messages on one key: one dead-lettered, 2,999 parked, in DLQ sends that fit; other topics keep storing', async () => {
    await ensureTopics(env, [orders, `${orders}.dlq`])
    const garbage = Array.from({ length: 3000 }, (_, i) => ({
      topic: customers,
      key: 'burst',
      value: `#${String(i).padStart(5, '0')} ${'x'.repeat(392)}`,
    }))
    const flowing = versions('orders', 'o1', 1, 5)
    // Published in chunks the broker takes; the consumer's fetches then hold ~1 MiB of them each.
    for (let i = 0; i < garbage.length; i += 1000) await publish(env, garbage.slice(i, i + 1000))
    await publish(env, flowing.map((e) => message(env, e)))
    await eventually(async () => (await stateOf(env, 'orders', 'o1'))?.version === 5, 30_000)
    const dead = await eventually(async () => {
      const all = await dlqOf(customers, 'burst')
      return all.length >= 3000 && all
    }, 45_000)
    expect(dead).toHaveLength(3000)
    expect(dead.filter((m) => m.headers[DlqHeaders.parked] !== 'true')).toHaveLength(1)
    expect(dead[0]!.headers[DlqHeaders.error]).toContain('undecodable JSON')
    // In order, every copy whole.
    expect(dead.map((m) => m.value!.toString().slice(1, 6))).toEqual(garbage.map((g) => g.value.slice(1, 6)))
    // Still flowing on the burst's own topic.
    await publish(env, [message(env, event('customers', 'after-burst', 1))])
    await eventually(async () => (await stateOf(env, 'customers', 'after-burst'))?.version === 1, 30_000)
  }, 120_000)

  test('a null key and a tombstone stay null in the DLQ', async () => {
    await publish(env, [
      { topic: customers, key: null, value: null, headers: { probe: 'tombstone' } },
      { topic: customers, key: 'k-null-value', value: null },
    ])
    const dead = await eventually(async () => {
      const all = (await readAll(env, `${customers}.dlq`)).filter((m) => m.headers.probe === 'tombstone' || m.key === 'k-null-value')
      return all.length === 2 && all
    }, 30_000)
    const tomb = dead.find((m) => m.headers.probe === 'tombstone')!
    expect(tomb.key).toBeNull()
    expect(tomb.value).toBeNull()
    expect(tomb.headers[DlqHeaders.error]).toContain('empty message value')
    expect(dead.find((m) => m.key === 'k-null-value')!.value).toBeNull()
  }, 60_000)

  test('an original too large for its DLQ topic is stored by reference; a batch of them is sent in requests that fit', async () => {
    const dlqTopic = `${customers}.dlq`
    const producer = await env.rt.kafka().producer()
    try {
      // A DLQ topic with a small max.message.bytes, as a broker could be configured.
      const limit = 20_000
      const sender = new DeadLetterSender(producer, { maxMessageBytes: async () => limit })
      const original = (offset: number, size: number): InMessage => ({
        topic: customers,
        partition: 0,
        offset: String(900_000 + offset),
        key: `big-${offset}`,
        value: Buffer.from('y'.repeat(size)),
        headers: { [EventHeaders.id]: `id-${offset}`, big: 'h' },
        timestamp: String(Date.now()),
      })
      const copies = [original(1, 50_000), original(2, 5_000), original(3, 5_000), original(4, 5_000), original(5, 5_000)].map((m) =>
        deadLetter(m, { error: 'too large for the test', group: 'g', at: new Date().toISOString(), parked: false }),
      )
      await sender.send(copies)
      const got = await eventually(async () => {
        const all = (await readAll(env, dlqTopic)).filter((m) => m.key?.startsWith('big-'))
        return all.length === 5 && all
      })
      const big = got.find((m) => m.key === 'big-1')!
      expect(big.headers[DlqHeaders.reference]).toBe('value')
      expect(big.headers[DlqHeaders.offset]).toBe('900001')
      expect(big.headers[DlqHeaders.error]).toBe('too large for the test')
      expect(big.headers.big).toBe('h')
      const ref = JSON.parse(big.value!.toString()) as DlqReference
      expect(ref.cdcDlqReference).toMatchObject({ topic: customers, partition: 0, offset: '900001', bytes: 50_000 })
      expect(ref.preview).toBe('y'.repeat(512))
      for (const key of ['big-2', 'big-3', 'big-4', 'big-5']) {
        const m = got.find((g) => g.key === key)!
        expect(m.value!.length).toBe(5_000)
        expect(m.headers[DlqHeaders.reference]).toBeUndefined()
      }
    } finally {
      await producer.disconnect()
    }
    expect(DEFAULT_MAX_SEND_BYTES).toBeLessThan(1_048_588)
  }, 60_000)
})
