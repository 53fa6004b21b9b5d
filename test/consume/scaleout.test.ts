// Three `cdc consume` processes in one group on a 6-partition topic, with membership changes (kill -9, SIGTERM,
// processes added) while poison messages park aggregates, a redrive releases them and a discard gives up dead heads.
// In the end every aggregate's history is complete and was stored in version order (no park was bypassed, whoever
// owned the partition), nothing is left parked, and every read model equals the last row.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Subprocess } from 'bun'
import type { Doc } from '../../src/clients/mongo.ts'
import type { CdcEvent } from '../../src/events.ts'
import { discard } from '../../src/redrive/discard.ts'
import { listDlq, redrive } from '../../src/redrive/index.ts'
import { createTestEnv, eventually, ROOT, type TestEnv } from '../support/env.ts'
import { stackConfigEnv } from '../support/stack-env.ts'
import { ensureTopics, event, message, publish, storeOf, versions } from './support.ts'

let env: TestEnv
let topic: string
const children = new Set<Subprocess>()

beforeAll(async () => {
  env = await createTestEnv((c) => {
    c.kafka.partitions = 6
    c.consume.tables = ['customers', 'products']
  })
  topic = `${env.tag}.customers`
  await ensureTopics(env, [topic, `${env.tag}.products`])
})

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL')
  await env?.cleanup()
})

/** One `cdc consume` process; phase 1 consumes customers only, so product events on the customers topic are poison. */
function spawnConsumer(tables: string) {
  const child = Bun.spawn(['bun', 'run', 'src/cli.ts', 'consume'], {
    cwd: ROOT,
    env: {
      ...process.env,
      ...stackConfigEnv(),
      CDC_KAFKA_TOPIC_TEMPLATE: env.config.kafka.topicTemplate,
      CDC_KAFKA_CLIENT_ID: env.config.kafka.clientId,
      CDC_KAFKA_PARTITIONS: '6',
      CDC_MONGO_DATABASE: env.config.mongo.database,
      CDC_CONSUME_GROUP_ID: env.config.consume.groupId,
      CDC_CONSUME_TABLES: tables,
      CDC_LOG_LEVEL: process.env.CDC_TEST_LOG === '1' ? 'info' : 'warn',
    },
    stdout: 'ignore',
    stderr: process.env.CDC_TEST_LOG === '1' ? 'inherit' : 'ignore',
  })
  children.add(child)
  void child.exited.then(() => children.delete(child))
  return child
}

const CUSTOMERS = Array.from({ length: 24 }, (_, i) => `sc${i}`)
const PRODUCTS = ['sp0', 'sp1', 'sp2', 'sp3']
const DEAD = ['sg0', 'sg1']
const ROUNDS = 4
const PER_ROUND = 5

describe('scaling out', () => {
  test('3 processes, rebalances, parks, redrive and discard: complete histories in version order, read models equal to the rows', async () => {
    const customers = new Map(CUSTOMERS.map((id) => [id, versions('customers', id, 1, ROUNDS * PER_ROUND * 2)]))
    const dead = new Map(DEAD.map((id) => [id, versions('customers', id, 1, ROUNDS * 2)]))
    const products = new Map(PRODUCTS.map((id) => [id, Array.from({ length: ROUNDS * 2 }, (_, i) => event('products', id, i + 1))]))
    let sent = 0
    const t0 = Date.now()
    const mark = (what: string) => process.env.CDC_TEST_LOG === '1' && console.error(`[scaleout] ${((Date.now() - t0) / 1000).toFixed(1)}s ${what}`)
    /** Publishes the next slice of every aggregate (product events go to the customers topic). */
    const round = async (r: number) => {
      const out = [
        ...[...customers.values()].flatMap((list) => list.slice(r * PER_ROUND, (r + 1) * PER_ROUND)),
        ...[...dead.values(), ...products.values()].flatMap((list) => list.slice(r, r + 1)),
      ].map((e) => message(env, e, topic))
      // Dead heads: an unreadable message keyed with the aggregate, before its first version.
      if (r === 0) out.unshift(...DEAD.map((key) => ({ topic, key, value: `{garbage ${key}` })))
      await publish(env, out)
      sent += out.length
    }

    // Phase 1: products are not consumed yet, so each product's first event fails and the rest park behind it.
    let procs = [spawnConsumer('customers'), spawnConsumer('customers'), spawnConsumer('customers')]
    await round(0)
    await Bun.sleep(3000)
    procs[0]!.kill('SIGKILL')
    await round(1)
    procs.push(spawnConsumer('customers'))
    await Bun.sleep(3000)
    procs[1]!.kill('SIGTERM')
    await round(2)
    mark('phase 1 published')
    // Every product and dead head is in the DLQ by now (the processes that remain own their partitions).
    await eventually(async () => (await listDlq(env.rt, { topic })).items.length >= (PRODUCTS.length + DEAD.length) * 3, 60_000, 1000)

    mark('phase 1 dead-lettered')
    // The fix (products become consumed) rolls out: all processes replaced, then more membership changes.
    for (const p of procs) p.kill('SIGTERM')
    await Promise.all(procs.map((p) => p.exited))
    procs = [spawnConsumer('customers,products'), spawnConsumer('customers,products'), spawnConsumer('customers,products')]
    await round(3)
    await Bun.sleep(2000)
    // Redrive while the group still changes: the products' parks are released by whichever process owns them.
    const redriven = await redrive(env.rt, { topic, error: 'not a consumed table', dryRun: false })
    expect(redriven.redriven).toBeGreaterThan(0)
    mark('redriven')
    procs[0]!.kill('SIGKILL')
    procs.push(spawnConsumer('customers,products'))
    // The dead heads fail on every redrive: discard them, which releases their followers.
    const heads = (await listDlq(env.rt, { topic })).items.filter((e) => DEAD.includes(e.key ?? '') && !e.parked)
    expect(heads).toHaveLength(DEAD.length)
    for (const head of heads) await discard(env.rt, { topic: head.topic, partition: head.partition, offset: head.offset, reason: 'unreadable', actor: 'test' })
    await round(4)
    await round(5)
    procs[2]!.kill('SIGTERM')
    await round(6)
    await round(7)
    mark('all published')

    // Messages that arrived while a park was being lifted were parked once more: redrive until nothing is pending.
    const store = storeOf(env)
    const all = new Map<string, { events: CdcEvent[] }>([...customers, ...dead, ...products].map(([id, events]) => [id, { events }]))
    // Few queries (the local MongoDB-wire server scans for these): one history read and one state read per table.
    const tables = ['customers', 'products']
    const histories = async () => {
      const byId = new Map<string, Doc[]>()
      for (const table of tables) {
        for (const d of await store.collection(`${table}_history`).find({}, { sort: { 'aggregate.id': 1, version: 1 } })) {
          const id = (d.aggregate as { id: string }).id
          byId.set(id, [...(byId.get(id) ?? []), d])
        }
      }
      return byId
    }
    const complete = async () => {
      const now = await histories()
      return [...all].every(([id, { events }]) => (now.get(id)?.length ?? 0) >= events.length)
    }
    await eventually(
      async () => {
        if (await complete()) return true
        mark('incomplete')
        await redrive(env.rt, { topic, dryRun: false })
        mark('redriven again')
        return false
      },
      90_000,
      4000,
    )
    mark('complete')

    const byId = await histories()
    for (const [id, { events }] of all) {
      const docs = byId.get(id) ?? []
      // Complete, each event once, in version order.
      expect(docs.map((d) => d._id)).toEqual(events.map((e) => e.id))
      // Parks respected: a later version was never stored before an earlier one.
      const stored = docs.map((d) => String(d.storedAt))
      expect(stored).toEqual([...stored].sort())
    }
    const states = async () => new Map((await Promise.all(tables.map((t) => store.collection(`${t}_state`).find({})))).flat().map((d) => [d._id as string, d]))
    await eventually(async () => {
      const now = await states()
      return [...all].every(([id, { events }]) => now.get(id)?.version === events.at(-1)!.version)
    }, 30_000)
    const final = await states()
    for (const [id, { events }] of all) {
      const last = events.at(-1)!
      expect(final.get(id)).toMatchObject({ version: last.version, row: last.after!, deleted: false })
    }
    await eventually(async () => (await store.collection('cdc_parked').count()) === 0, 30_000)
    expect(sent).toBeGreaterThan(0)
    mark('checked')
    for (const p of procs) p.kill('SIGTERM')
    await Promise.all(procs.map((p) => p.exited))
  }, 240_000)
})
