// Stopping a consumer in the middle of a large backlog: stop() returns (liveness bounds, not timing goals), nothing is
// committed after it returned, and a successor finishes the backlog with every event stored exactly once. A `cdc
// consume` whose MongoDB takes a minute over a batch still stops within the CLI's own shutdown budget on SIGTERM.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import net from 'node:net'
import type { Subprocess } from 'bun'
import { startConsumer } from '../../src/consume/index.ts'
import * as metrics from '../../src/consume/metrics.ts'
import type { Role } from '../../src/runtime.ts'
import { createTestEnv, eventually, ROOT, type TestEnv } from '../support/env.ts'
import { ensureTopics, message, publish, storeOf, versions } from './support.ts'

const AGGREGATES = 200
const VERSIONS = 30

let env: TestEnv
const running = new Set<Role>()
const children = new Set<Subprocess>()
const closers: (() => void)[] = []

beforeAll(async () => {
  env = await createTestEnv()
})

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL')
  for (const role of running) await role.stop().catch(() => {})
  for (const close of closers) close()
  await env?.cleanup()
})

/** A backlog of AGGREGATES × `depth` events on `topic`, versions interleaved so every batch touches many aggregates. */
async function backlog(topic: string, prefix: string, depth = VERSIONS) {
  await ensureTopics(env, [topic])
  const ids = Array.from({ length: AGGREGATES }, (_, i) => `${prefix}${i}`)
  const events = Array.from({ length: depth }, (_, v) => ids.flatMap((id) => versions('customers', id, v + 1, v + 1))).flat()
  for (let i = 0; i < events.length; i += 2000) await publish(env, events.slice(i, i + 2000).map((e) => message(env, e, topic)))
  return { ids, total: events.length }
}

async function committed(groupId: string, topic: string) {
  return (await env.rt.kafka().lag(groupId, topic)).reduce((n, p) => n + p.committed, 0)
}

/** Rejects when `promise` is still pending after `ms`, so a hang fails the test with a clear message. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: Timer | undefined
  const bound = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} still pending after ${ms} ms`)), ms)))
  try {
    return await Promise.race([promise, bound])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A TCP relay in front of MongoDB that, once slowed, holds every large request (a batch's writes) and what follows it
 * on that connection for SLOW_MS, as an overloaded server would. Small ones (the driver's heartbeats) still pass, so
 * the driver sees a live server and the operation simply waits.
 */
const SLOW_MS = 60_000
async function slowableMongo(): Promise<{ url: string; slow(): void }> {
  const target = new URL(env.config.mongo.url)
  let slow = false
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 27017), target.hostname)
    let heldUntil = 0
    client.on('data', (chunk) => {
      if (slow && chunk.length > 16_384) heldUntil = Math.max(heldUntil, Date.now() + SLOW_MS)
      // Same due time for everything held on this connection: timers fire in order, so the stream stays intact.
      if (heldUntil > Date.now()) setTimeout(() => upstream.write(chunk), heldUntil - Date.now()).unref()
      else upstream.write(chunk)
    })
    upstream.on('data', (chunk) => client.write(chunk))
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      a.on('error', () => {})
      a.on('close', () => b.destroy())
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  closers.push(() => server.close())
  const { port } = server.address() as net.AddressInfo
  return { url: `mongodb://127.0.0.1:${port}`, slow: () => void (slow = true) }
}

describe('consumer stop', () => {
  test('stops in the middle of a large backlog; a successor finishes it exactly once', async () => {
    const topic = `${env.tag}.customers`
    const { ids, total } = await backlog(topic, 's')
    const stored = () => metrics.stored.get({ table: 'customers' })
    const stored0 = stored()

    const first = await startConsumer(env.rt)
    running.add(first)
    await eventually(async () => stored() - stored0 > 0, 60_000, 20)
    await within(20_000, 'stop()', first.stop())
    running.delete(first)
    const atStop = await committed(env.config.consume.groupId, topic)
    expect(atStop).toBeLessThan(total)
    // No batch, retry or restarted kafkajs consumer is left behind to commit after stop() returned.
    await Bun.sleep(3000)
    expect(await committed(env.config.consume.groupId, topic)).toBe(atStop)

    const second = await startConsumer(env.rt)
    running.add(second)
    await eventually(async () => (await committed(env.config.consume.groupId, topic)) >= total, 180_000, 500)
    const history = storeOf(env).collection('customers_history')
    expect(await history.count({})).toBe(total)
    const states = await storeOf(env).collection('customers_state').find({ _id: { $in: ids } }, { projection: { version: 1 } })
    expect(states.filter((s) => s.version === VERSIONS)).toHaveLength(AGGREGATES)
    await within(20_000, 'stop()', second.stop())
    running.delete(second)
  }, 300_000)

  test('cdc consume whose MongoDB takes a minute over a batch stops within its shutdown budget on SIGTERM', async () => {
    const topic = `${env.tag}_hung.customers`
    // Several fetches per partition (a fetch takes up to 1 MB of one): with one batch per partition, a fast machine
    // stored and committed the whole backlog before the test could slow MongoDB down.
    const { total } = await backlog(topic, 'h', VERSIONS * 5)
    const mongo = await slowableMongo()
    const groupId = `${env.config.consume.groupId}-hung`
    const child = Bun.spawn(['bun', 'run', 'src/cli.ts', 'consume'], {
      cwd: ROOT,
      env: {
        ...process.env,
        CDC_POSTGRES_URL: env.config.postgres.url,
        CDC_KAFKA_BROKERS: env.config.kafka.brokers.join(','),
        CDC_MONGO_URL: mongo.url,
        CDC_KAFKA_TOPIC_TEMPLATE: `${env.tag}_hung.{table}`,
        CDC_KAFKA_CLIENT_ID: `${env.config.kafka.clientId}-hung`,
        CDC_MONGO_DATABASE: `${env.config.mongo.database}_hung`,
        CDC_CONSUME_GROUP_ID: groupId,
        CDC_LOG_LEVEL: 'warn',
        CDC_DEMO_ENABLED: 'true',
      },
      stdout: 'ignore',
      stderr: process.env.CDC_TEST_LOG === '1' ? 'inherit' : 'ignore',
    })
    children.add(child)
    await eventually(async () => (await committed(groupId, topic)) > 0, 60_000, 100)
    mongo.slow()
    await Bun.sleep(3000) // the next batches' writes now wait on the server
    child.kill('SIGTERM')
    // Exit code 1 would mean the CLI's 15 s shutdown budget ran out; 30 s only turns a hang into a clear failure.
    expect(await within(30_000, 'cdc consume exit', child.exited)).toBe(0)
    children.delete(child)
    expect(await committed(groupId, topic)).toBeLessThan(total)
  }, 180_000)
})
