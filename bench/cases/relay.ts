// Relay throughput and latency, poll and wal modes. Throughput: a pre-filled backlog (transactions of TX_SIZE events)
// drained from PostgreSQL to Kafka (read, one Kafka transaction per batch, delete / confirm), next to the raw kafkajs
// transactional producer sending the same messages in the same batch sizes, in paired rounds (raw then relay, relay
// then raw, …): a single pair swung from 0.52× to 0.79× between runs on the 2-core machine, with whichever side ran
// first on a cold broker losing. The ratio is the median of the pairs'. Latency: commit of a one-event transaction
// until a read_committed consumer has it. kafkajs is imported here only for the raw baseline.
import { Kafka, logLevel } from 'kafkajs'
import { latencyMeasurement, median, sum, type BenchCase, type CaseResult, type Measurement } from '../types.ts'
import { createTestEnv, type TestEnv } from '../../test/support/env.ts'
import { migrate } from '../../src/capture/migrate.ts'
import { RELAY_LINGER_MS } from '../../src/config.ts'
import { startRelay } from '../../src/relay/index.ts'
import { relayMetrics } from '../../src/relay/metrics.ts'
import { toMessage, type Outgoing } from '../../src/relay/publish.ts'
import { EventHeaders } from '../../src/events.ts'
import { serverProcesses, type Proc } from '../pipeline.ts'
import { CpuMeter } from '../proc.ts'

const TX_SIZE = 5
const AGGREGATES = 500
const BATCH = 1000 // relay.batchSize default
const PAIRS = 4

/** What the CPU figures cover: the bench process (the relay runs in it, as does the raw producer), PostgreSQL, Kafka. */
const PROCESSES: Proc[] = [{ name: 'bench process', pid: () => process.pid }, ...serverProcesses().filter((p) => p.name !== 'ferretdb')]

/** `count` events in transactions of TX_SIZE, committed one by one; event g is version g / AGGREGATES + 1 of b<g % AGGREGATES>. */
const PREFILL = `do $$
declare base int;
begin
  for base in 0 .. $COUNT - 1 by ${TX_SIZE} loop
    with stored as (
    insert into cdc.event_store (id, aggregate_type, aggregate_id, version, type, tx_id, occurred_at, payload)
    select id, 'customers', 'b' || (g % ${AGGREGATES}), g / ${AGGREGATES} + 1, 'CustomerUpdated', pg_current_xact_id(), now(),
           jsonb_build_object('id', id, 'type', 'CustomerUpdated', 'op', 'u',
             'aggregate', jsonb_build_object('type', 'customers', 'id', 'b' || (g % ${AGGREGATES})),
             'version', g / ${AGGREGATES} + 1, 'tx', jsonb_build_object('id', pg_current_xact_id()::text, 'index', g - base),
             'occurredAt', to_char(now() at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
             'actor', jsonb_build_object('id', 'bench', 'source', 'sql'), 'reason', null, 'correlationId', null,
             'causationId', null, 'changes', jsonb_build_array(jsonb_build_object('path', 'name', 'before', 'old name', 'after', 'new name')),
             'before', jsonb_build_object('id', g, 'name', 'old name', 'email', 'someone@example.com', 'address', '1 Main Street'),
             'after', jsonb_build_object('id', g, 'name', 'new name', 'email', 'someone@example.com', 'address', '1 Main Street'),
             'schema', 1)
      from (select g, gen_random_uuid() as id from generate_series(base, least(base + ${TX_SIZE}, $COUNT) - 1) g) x
    returning id, tx_id)
    insert into cdc.outbox (event_id, tx_id) select id, tx_id from stored;
    commit;
  end loop;
end $$`

async function waitFor(check: () => boolean, timeoutMs: number) {
  const deadline = performance.now() + timeoutMs
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`)
    await Bun.sleep(1)
  }
}

/** Drains `count` pre-filled events; the clock starts at the first committed batch (leader election and producer
 * start-up excluded, as for the raw producer's connect). */
async function drain(env: TestEnv, mode: 'poll' | 'wal', count: number): Promise<Measurement> {
  const base = relayMetrics.published.get({ mode })
  const relay = await startRelay(env.rt, { mode })
  try {
    await waitFor(() => relayMetrics.published.get({ mode }) > base, 60_000)
    const t0 = performance.now()
    const first = relayMetrics.published.get({ mode }) - base
    await waitFor(() => relayMetrics.published.get({ mode }) - base >= count, 300_000)
    const seconds = (performance.now() - t0) / 1000
    return { perSecond: (count - first) / seconds, count: count - first, seconds }
  } finally {
    await relay.stop()
  }
}

/** The raw kafkajs producer sending the same messages in the same batches: one Kafka transaction per batch (the same
 * work the relay does, and what its guarantee needs) or a plain idempotent send. */
async function rawProducer(env: TestEnv, events: Outgoing[], transactional: boolean): Promise<Measurement> {
  const topics = [...new Set(events.map((e) => toMessage(env.config, e).topic))]
  await env.rt.kafka().ensureTopics(topics.map((topic) => ({ topic, partitions: env.config.kafka.partitions, replicationFactor: 1 })))
  const kafka = new Kafka({ clientId: `${env.tag}-raw`, brokers: env.config.kafka.brokers, logLevel: logLevel.NOTHING })
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    ...(transactional ? { transactionalId: `${env.tag}-raw-tx` } : {}),
  })
  await producer.connect()
  try {
    const messages = events.map((e) => toMessage(env.config, e))
    const batch = (slice: typeof messages) => ({
      acks: -1,
      topicMessages: [{ topic: slice[0]!.topic, messages: slice.map(({ key, value, headers }) => ({ key, value, headers })) }],
    })
    const send = async (slice: typeof messages) => {
      if (!transactional) return void (await producer.sendBatch(batch(slice)))
      const tx = await producer.transaction()
      await tx.sendBatch(batch(slice))
      await tx.commit()
    }
    await send(messages.slice(0, BATCH)) // warm-up, like the relay's first batch
    const t0 = performance.now()
    for (let i = BATCH; i < messages.length; i += BATCH) await send(messages.slice(i, i + BATCH))
    const seconds = (performance.now() - t0) / 1000
    return { perSecond: (messages.length - BATCH) / seconds, count: messages.length - BATCH, seconds }
  } finally {
    await producer.disconnect()
  }
}

/** The same messages as the relay publishes, for the raw baseline (values of the same size and shape). */
async function sameEvents(env: TestEnv, count: number): Promise<Outgoing[]> {
  await env.rt.db().script(PREFILL.replaceAll('$COUNT', String(count)))
  const rows = await env.rt.db().query<{ event_id: string; aggregate_id: string; version: number; payload: string }>(
    `select o.event_id::text, e.aggregate_id, e.version, e.payload::text
       from cdc.outbox o join cdc.event_store e on e.id = o.event_id order by o.seq`,
  )
  await env.rt.db().query('truncate cdc.outbox, cdc.event_store')
  return rows.map((r) => ({ eventId: r.event_id, aggregateType: 'customers', aggregateId: r.aggregate_id, version: r.version, type: 'CustomerUpdated', value: r.payload }))
}

/** Commit → visible to a read_committed consumer, one-event transactions at a steady rate. */
async function latency(env: TestEnv, mode: 'poll' | 'wal', seconds: number): Promise<Measurement> {
  const relay = await startRelay(env.rt, { mode })
  const topic = `${env.tag}.customers`
  await env.rt.kafka().ensureTopics([{ topic, partitions: env.config.kafka.partitions, replicationFactor: 1 }])
  const committed = new Map<string, number>()
  const latencies: number[] = []
  const consumer = await env.rt.kafka().consumer({ groupId: `${env.tag}-lat-${mode}`, topics: [topic], fromBeginning: false })
  void consumer.run(async (batch) => {
    const now = performance.now()
    for (const m of batch.messages) {
      const at = committed.get(m.headers[EventHeaders.id]!)
      if (at !== undefined) latencies.push(now - at)
    }
  })
  try {
    await Bun.sleep(3000) // group join
    const db = env.rt.db()
    const deadline = performance.now() + seconds * 1000
    let n = 0
    while (performance.now() < deadline) {
      const id = crypto.randomUUID()
      const payload = JSON.stringify({ id, type: 'CustomerUpdated', aggregate: { type: 'customers', id: `l${n % 50}` } })
      // as the capture trigger writes: event store, outbox row, and a NOTIFY only while the relay has armed its wake-up
      await db.begin(async (tx) => {
        await tx.query(
          `with stored as (
             insert into cdc.event_store (id, aggregate_type, aggregate_id, version, type, tx_id, occurred_at, payload)
             values ($1, 'customers', $2, $3, 'CustomerUpdated', pg_current_xact_id(), now(), $4::text::jsonb) returning id, tx_id)
           insert into cdc.outbox (event_id, tx_id) select id, tx_id from stored`,
          [id, `l${n % 50}`, Math.floor(n / 50) + 1, payload],
        )
        await tx.query(`select pg_notify('cdc_outbox', '') where pg_sequence_last_value('cdc.relay_wake') = 1`)
      })
      committed.set(id, performance.now())
      n++
      await Bun.sleep(10)
    }
    const deadlineAll = performance.now() + 10_000
    while (latencies.length < committed.size && performance.now() < deadlineAll) await Bun.sleep(50)
  } finally {
    await consumer.stop().catch(() => {})
    await relay.stop()
  }
  return latencyMeasurement(latencies, seconds)
}

export const relay: BenchCase = async ({ scale, log }) => {
  const count = Math.max(2000, Math.round(30_000 * scale))
  const results: CaseResult[] = []
  for (const mode of ['poll', 'wal'] as const) {
    const env = await createTestEnv((c) => {
      c.relay.batchSize = BATCH
      c.relay.lingerMs = RELAY_LINGER_MS
    })
    try {
      await migrate(env.rt)
      const events = await sameEvents(env, count)
      const rawPlain = await rawProducer(env, events, false)
      if (mode === 'wal') {
        // The slot must exist before the backlog is written, so the backlog is streamed (not drained the poll way).
        const r = await startRelay(env.rt, { mode })
        await waitFor(() => relayMetrics.leader.get() === 1, 30_000)
        await Bun.sleep(1500)
        await r.stop()
      }
      const raws: Measurement[] = []
      const ours: Measurement[] = []
      const ratios: number[] = []
      // CPU per process while each side works (the relay's drain includes its start; the prefill is outside)
      const cpuRaw = new CpuMeter(PROCESSES)
      const cpuOurs = new CpuMeter(PROCESSES)
      for (let pair = 0; pair < PAIRS; pair++) {
        const runRaw = async () => raws.push(await cpuRaw.measure(() => rawProducer(env, events, true)))
        const runOurs = async () => {
          await env.rt.db().query('truncate cdc.outbox, cdc.event_store')
          await env.rt.db().script(PREFILL.replaceAll('$COUNT', String(count)))
          ours.push(await cpuOurs.measure(() => drain(env, mode, count)))
        }
        if (pair % 2 === 0) {
          await runRaw()
          await runOurs()
        } else {
          await runOurs()
          await runRaw()
        }
        ratios.push(ours.at(-1)!.perSecond / raws.at(-1)!.perSecond)
        log(`${mode} pair ${pair + 1}: raw ${raws.at(-1)!.perSecond.toFixed(0)}/s, relay ${ours.at(-1)!.perSecond.toFixed(0)}/s, ratio ${ratios.at(-1)!.toFixed(2)}`)
      }
      const sorted = [...ratios].sort((a, b) => a - b)
      const total = (ms: Measurement[]): Measurement => ({
        perSecond: median(ms.map((m) => m.perSecond)),
        count: sum(ms.map((m) => m.count)),
        seconds: sum(ms.map((m) => m.seconds)),
      })
      const ourRate = median(ours.map((m) => m.perSecond))
      results.push({
        name: `relay/${mode}`, stage: 'relay', unit: 'event', ours: total(ours), raw: total(raws), ratio: median(ratios),
        target: { ratio: 0.8 },
        notes: `median of ${PAIRS} paired rounds (AB/BA), spread ${sorted[0]!.toFixed(2)}–${sorted.at(-1)!.toFixed(2)}; backlog of ${count} events (${TX_SIZE}/tx) → Kafka, one Kafka transaction per batch of ${BATCH} + ${mode === 'poll' ? 'outbox delete' : 'outbox delete + LSN confirm'}; raw = kafkajs transactional producer, same messages and batches; vs a plain idempotent send (no transaction, ${rawPlain.perSecond.toFixed(0)}/s): ${(ourRate / rawPlain.perSecond).toFixed(2)}×; CPU µs per event — relay: ${cpuOurs.perUnit(count * PAIRS)}; raw: ${cpuRaw.perUnit(count * PAIRS)}`,
      })
      log(`${mode}: latency`)
      const lat = await latency(env, mode, Math.max(2, 5 * scale))
      results.push({
        name: `relay/${mode}-latency`, stage: 'relay', unit: 'event', ours: lat,
        notes: 'commit of a one-event transaction → received by a read_committed consumer; transactions back to back, 10 ms apart',
      })
    } finally {
      await env.cleanup()
    }
  }
  return results
}
