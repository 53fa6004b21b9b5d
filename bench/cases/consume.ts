// Consumer throughput: a pre-filled topic drained into MongoDB (history insertMany + state bulk write + offset
// commits), next to the raw mongodb driver doing the same writes in batches of the same mean size: the same history
// documents with insertMany, and the same state writes (first state an insert, later ones version-guarded updates),
// into collections with the same indexes; also the history insertMany alone, for reference. mongodb is imported here
// only for the raw baselines.
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

/** The i-th event of a synthetic backlog spread over `aggregates` customers, versions in order per customer. */
export function eventOf(i: number, aggregates = AGGREGATES, prefix = 'b'): CdcEvent {
  const id = `${prefix}${i % aggregates}`
  const version = Math.floor(i / aggregates) + 1
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
    await client.connect()
    const storedAt = new Date().toISOString()
    const docs = events.map((e, i) =>
      historyDoc(e, { topic, partition: i % 3, offset: String(i), key: e.aggregate.id, value: null, headers: {}, timestamp: '0' }, storedAt),
    )
    const partitions = env.config.kafka.partitions
    // As many concurrent writers as we have partitions, each with the events of its aggregates (so per-aggregate
    // order holds, as on a Kafka partition), in batches of our mean size, into collections with the same indexes.
    const runRaw = async (name: string, withState: boolean): Promise<Measurement> => {
      const db = client.db(`${env.tag}_${name}`)
      const history = db.collection('customers_history')
      const state = db.collection('customers_state')
      for (const index of HISTORY_INDEXES) await history.createIndex(index.key, { name: index.name, unique: index.unique ?? false })
      const t0 = performance.now()
      await Promise.all(
        Array.from({ length: partitions }, async (_, p) => {
          const share = docs.filter((_, i) => Number(events[i]!.aggregate.id.slice(1)) % partitions === p)
          for (let i = 0; i < share.length; i += meanBatch) {
            const batch = share.slice(i, i + meanBatch)
            await history.insertMany(batch as never[], { ordered: false })
            if (!withState) continue
            // The state writes ours makes for this batch: per aggregate, a first state is an insert, a later one an
            // update guarded by the version before the batch; at most 8 updates per command (clients/mongo.ts: more
            // wedge FerretDB's connection pool).
            const byAggregate = new Map<string, CdcEvent[]>()
            for (const d of batch) byAggregate.set(d.aggregate.id, [...(byAggregate.get(d.aggregate.id) ?? []), d])
            const ops = [...byAggregate].map(([id, list]) => {
              const first = list[0]!
              const last = list.at(-1)!
              const $set = { aggregate: last.aggregate, version: last.version, occurredAt: last.occurredAt, eventId: last.id, deleted: false, row: last.after }
              return first.version === 1
                ? { insertOne: { document: { _id: id, ...$set } } }
                : { updateOne: { filter: { _id: id, version: first.version - 1 }, update: { $set } } }
            })
            const chunks: (typeof ops)[] = [[]]
            let updates = 0
            for (const op of ops) {
              if ('updateOne' in op && ++updates > 8) {
                chunks.push([])
                updates = 1
              }
              chunks.at(-1)!.push(op)
            }
            for (const chunk of chunks) if (chunk.length > 0) await state.bulkWrite(chunk as never[], { ordered: false })
          }
        }),
      )
      const seconds = (performance.now() - t0) / 1000
      return { perSecond: count / seconds, count, seconds }
    }
    const rawInsert = await runRaw('raw', false)
    log(`raw insertMany only ${rawInsert.perSecond.toFixed(0)}/s in batches of ${meanBatch}`)
    const rawM = await runRaw('raw_same', true)
    log(`raw same writes (history insertMany + state writes) ${rawM.perSecond.toFixed(0)}/s in batches of ${meanBatch}`)
    return [
      {
        name: 'consume/history',
        stage: 'consume',
        unit: 'event',
        ours,
        raw: rawM,
        ratio: ours.perSecond / rawM.perSecond,
        target: { ratio: 0.7 },
        notes: `Kafka → history insertMany + state bulk write + commit, ${AGGREGATES} aggregates, ${env.config.kafka.partitions} partitions; raw = the same writes with the driver (history insertMany + the same state inserts/guarded updates, 8 updates per command), ${env.config.kafka.partitions} concurrent writers, batches of ${meanBatch}; raw history insertMany alone: ${rawInsert.perSecond.toFixed(0)}/s (ours = ${(ours.perSecond / rawInsert.perSecond).toFixed(2)}× of that)`,
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
