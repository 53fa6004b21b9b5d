// Consumer throughput: a pre-filled topic drained into MongoDB (history insertMany + state bulk write + offset
// commits), next to the raw mongodb driver inserting the same history documents with insertMany in batches of the
// same mean size, into a collection with the same indexes. mongodb is imported here only for the raw baseline.
import { MongoClient } from 'mongodb'
import type { BenchCase, Measurement } from '../types.ts'
import { createTestEnv } from '../../test/support/env.ts'
import { startConsumer } from '../../src/consume/index.ts'
import * as metrics from '../../src/consume/metrics.ts'
import { HISTORY_INDEXES, historyDoc } from '../../src/consume/history.ts'
import { EventHeaders, type CdcEvent } from '../../src/events.ts'
import type { OutMessage } from '../../src/clients/kafka.ts'
import type { OutcomeMode } from '../../src/consume/outcomes.ts'

const AGGREGATES = 500

function eventOf(i: number): CdcEvent {
  const id = `b${i % AGGREGATES}`
  const version = Math.floor(i / AGGREGATES) + 1
  return {
    id: Bun.randomUUIDv7(),
    type: 'CustomerUpdated',
    op: version === 1 ? 'c' : 'u',
    aggregate: { type: 'customers', id },
    version,
    tx: { id: String(10_000 + i), index: 0, size: 1 },
    occurredAt: new Date().toISOString().replace('Z', '000Z'),
    actor: { id: 'bench', source: 'sql' },
    reason: null,
    correlationId: null,
    causationId: null,
    changes: [{ path: 'name', before: 'old name', after: 'new name' }],
    before: { id, name: 'old name', email: 'someone@example.com', address: '1 Main Street' },
    after: { id, name: 'new name', email: 'someone@example.com', address: '1 Main Street' },
    schema: 1,
  }
}

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 2) {
  const deadline = performance.now() + timeoutMs
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`)
    await Bun.sleep(stepMs)
  }
}

export const consume: BenchCase = async ({ scale, log }) => {
  const count = Math.max(1000, Math.round(20_000 * scale))
  const events = Array.from({ length: count }, (_, i) => eventOf(i))
  const toMessage = (e: CdcEvent, topic: string): OutMessage => ({
    topic,
    key: e.aggregate.id,
    value: JSON.stringify(e),
    headers: { [EventHeaders.id]: e.id, [EventHeaders.type]: e.type, [EventHeaders.version]: String(e.version) },
  })

  // Ours: joined and warmed up on one event first, then the clock runs from the first send of the backlog until the
  // last batch is committed (the sends overlap the consuming and take a fraction of the time; that counts against us).
  // Once per outcome-log mode, each in its own env (database, topics, group, MongoDB database: the runtime opens its
  // MongoDB database once, so one env per mode), with the same events.
  const runOurs = async (mode: OutcomeMode): Promise<{ ours: Measurement; meanBatch: number }> => {
    const env = await createTestEnv((c) => {
      c.consume.outcomes = mode
    })
    try {
      const kafka = env.rt.kafka()
      const topic = `${env.tag}.customers`
      await kafka.ensureTopics([{ topic, partitions: env.config.kafka.partitions, replicationFactor: 1 }])
      const producer = await kafka.producer()
      const stored0 = metrics.stored.get({ table: 'customers' })
      const consumer = await startConsumer(env.rt)
      try {
        const stored = () => metrics.stored.get({ table: 'customers' }) - stored0
        const committed = async () => (await kafka.lag(env.config.consume.groupId, topic)).reduce((n, p) => n + p.committed, 0)
        const send = (list: CdcEvent[]) => producer.send(list.map((e) => toMessage(e, topic)))
        await send([{ ...eventOf(count), aggregate: { type: 'customers', id: 'warm-up' }, version: 1 }])
        await waitFor(() => stored() >= 1, 60_000)
        const batches0 = metrics.batches.get()
        const t0 = performance.now()
        for (let i = 0; i < count; i += 2000) await send(events.slice(i, i + 2000))
        log(`${mode}: ${count} events sent in ${((performance.now() - t0) / 1000).toFixed(2)} s`)
        const progress = setInterval(() => log(`${mode}: ${stored() - 1} of ${count} stored after ${((performance.now() - t0) / 1000).toFixed(0)} s`), 10_000)
        try {
          await waitFor(() => stored() >= count + 1, 300_000)
          await waitFor(async () => (await committed()) >= count + 1, 60_000, 20)
        } finally {
          clearInterval(progress)
        }
        const seconds = (performance.now() - t0) / 1000
        const batchCount = Math.max(1, metrics.batches.get() - batches0)
        log(`ours (outcomes ${mode}) ${(count / seconds).toFixed(0)}/s in ${batchCount} batches`)
        return { ours: { perSecond: count / seconds, count, seconds }, meanBatch: Math.max(1, Math.round(count / batchCount)) }
      } finally {
        await producer.disconnect()
        await consumer.stop()
      }
    } finally {
      await env.cleanup()
    }
  }
  const off = await runOurs('off')
  const { ours, meanBatch } = await runOurs('failures')

  const env = await createTestEnv()
  const topic = `${env.tag}.customers`
  const client = new MongoClient(env.config.mongo.url, { directConnection: true })
  try {
    // Raw: the same documents, same indexes, insertMany (unordered) in batches of our mean size.
    await client.connect()
    const raw = client.db(`${env.tag}_raw`).collection('customers_history')
    for (const index of HISTORY_INDEXES) await raw.createIndex(index.key, { name: index.name, unique: index.unique ?? false })
    const storedAt = new Date().toISOString()
    const docs = events.map((e, i) =>
      historyDoc(e, { topic, partition: i % 3, offset: String(i), key: e.aggregate.id, value: null, headers: {}, timestamp: '0' }, storedAt),
    )
    // As many concurrent writers as we have partitions, each inserting its share in batches of our mean size.
    const partitions = env.config.kafka.partitions
    const t0 = performance.now()
    await Promise.all(
      Array.from({ length: partitions }, async (_, p) => {
        const share = docs.filter((_, i) => i % partitions === p)
        for (let i = 0; i < share.length; i += meanBatch) await raw.insertMany(share.slice(i, i + meanBatch) as never[], { ordered: false })
      }),
    )
    const seconds = (performance.now() - t0) / 1000
    const rawM: Measurement = { perSecond: count / seconds, count, seconds }
    log(`raw ${rawM.perSecond.toFixed(0)}/s in batches of ${meanBatch}`)
    return [
      {
        name: 'consume/history',
        stage: 'consume',
        unit: 'event',
        ours,
        raw: rawM,
        ratio: ours.perSecond / rawM.perSecond,
        target: { ratio: 0.7 },
        notes: `Kafka → history insertMany + state bulk write + commit, ${AGGREGATES} aggregates, ${env.config.kafka.partitions} partitions; raw = insertMany of the same documents, ${env.config.kafka.partitions} concurrent writers, batches of ${meanBatch}`,
      },
      ...(
        [
          ['off', off.ours, 'outcome log off'],
          ['failures', ours, 'outcome log failures-only (the default; same run as consume/history): no failures, so nothing is logged'],
        ] as const
      ).map(([mode, m, what]) => ({
        name: `consume/outcomes-${mode}`,
        stage: 'consume' as const,
        unit: 'event',
        ours: m,
        raw: rawM,
        ratio: m.perSecond / rawM.perSecond,
        target: { ratio: 0.7 },
        notes: `${what}; same backlog and raw baseline as consume/history`,
      })),
    ]
  } finally {
    await client.close().catch(() => {})
    await env.cleanup()
  }
}
