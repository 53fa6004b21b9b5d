// End to end with `cdc all` running as its own process: a write load through plain SQL (multi-row statements) and
// through the API, first as fast as the writers go (sustained events/s until the history has drained), then paced at
// half that rate to measure commit→history latency (history storedAt − occurredAt; occurredAt is the capturing
// transaction's timestamp, so this includes the transaction's own few milliseconds).
// Progress is read from the process's /metrics and PostgreSQL, not by counting MongoDB documents: FerretDB ships every
// document of the collection for a count (~1 ms each), which would compete with the consumer it measures. MongoDB is
// read once, at the end, by a top-level equality (`reason`), the kind of filter FerretDB leaves to PostgreSQL.
// Runs in the default capture mode (outbox) and in logical mode, and says where the CPU went during the load, per
// process.
import { connect, type Db } from '../../src/clients/postgres.ts'
import { connectMongo } from '../../src/clients/mongo.ts'
import { createPipeline, pipelineProcesses, waitFor, type Pipeline } from '../pipeline.ts'
import { usage } from '../proc.ts'
import { latencyMeasurement, type BenchCase, type CaseResult } from '../types.ts'

const ROWS_PER_STATEMENT = 50
const PACED_REASON = 'paced load'

async function sqlWriter(db: Db, id: number, until: () => boolean, pace?: { perSecond: number; phase: number }) {
  let i = 0
  let written = 0
  // Paced writers keep their own phase (a fraction of a statement's period), as independent clients do: started in
  // lockstep, all of them committed in the same instant, every period one burst of writers × 50 rows.
  const t0 = Date.now() + (pace ? (pace.phase * ROWS_PER_STATEMENT * 1000) / pace.perSecond : 0)
  if (pace) await Bun.sleep(t0 - Date.now())
  while (!until()) {
    i++
    const step = i % 4
    await db.begin(async (tx) => {
      await tx.query("select set_config('cdc.actor', 'bench', true), set_config('cdc.reason', $1, true), set_config('cdc.correlation_id', $2, true)", [
        pace ? PACED_REASON : 'load test',
        `w${id}-${i}`,
      ])
      if (step === 0) {
        await tx.query('update customers set phone = $1 where id in (select id from customers where id % 7 = $2 order by id desc limit $3)', [
          `+1-${i}`,
          id % 7,
          ROWS_PER_STATEMENT,
        ])
      } else {
        await tx.query(
          `insert into customers (name, email, address, phone)
           select 'Bench ' || g, 'w' || $1::int || '-' || $2::int || '-' || g || '@bench.test', g || ' Load St', null
           from generate_series(1, $3::int) g`,
          [id, i, ROWS_PER_STATEMENT],
        )
      }
    })
    written += ROWS_PER_STATEMENT
    if (pace) {
      const due = t0 + (written / pace.perSecond) * 1000
      const wait = due - Date.now()
      if (wait > 0) await Bun.sleep(wait)
    }
  }
}

async function apiWriter(api: string, id: number, until: () => boolean) {
  let i = 0
  const t0 = Date.now()
  while (!until()) {
    i++
    await fetch(`${api}/customers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-actor': 'bench-api', 'x-reason': 'load test' },
      body: JSON.stringify({ name: `Api ${id}-${i}`, email: `api${id}-${i}-${t0}@bench.test`, address: 'HTTP Way' }),
    }).catch(() => {})
  }
}

/** Where the events are: committed in PostgreSQL, published to Kafka by the relay, stored in the history. */
async function progress(db: Db, pipeline: Pipeline) {
  const [row] = await db.query<{ n: number }>("select count(*)::int as n from cdc.event_store where aggregate_type = 'customers'")
  const text = await (await fetch(`${pipeline.api}/metrics`)).text()
  const series = (name: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith(name))
      .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0)
  return {
    written: row!.n,
    published: series('cdc_relay_published_total'),
    stored: series('cdc_consume_events_stored_total{table="customers"}'),
  }
}

/** The buckets of one histogram series on the API's /metrics (cumulative counts by upper bound, seconds). */
async function histogramOf(api: string, name: string, labels: string): Promise<Map<number, number>> {
  const text = await (await fetch(`${api}/metrics`)).text()
  const out = new Map<number, number>()
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{${labels},le="([^"]+)"\\} (\\d+)$`, 'gm'))) out.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]))
  return out
}

/** The q-quantile (ms) of what a histogram observed between two scrapes, interpolated in its bucket as Prometheus does. */
function quantileMs(before: Map<number, number>, after: Map<number, number>, q: number): number | undefined {
  const bounds = [...after.keys()].sort((a, b) => a - b)
  const counts = bounds.map((b) => (after.get(b) ?? 0) - (before.get(b) ?? 0))
  const total = counts.at(-1) ?? 0
  if (total === 0) return undefined
  const rank = q * total
  for (let i = 0, lower = 0, below = 0; i < bounds.length; lower = bounds[i]!, below = counts[i]!, i++) {
    if (counts[i]! < rank) continue
    if (bounds[i] === Infinity) return lower * 1000
    return (lower + ((bounds[i]! - lower) * (rank - below)) / Math.max(1, counts[i]! - below)) * 1000
  }
  return undefined
}

type Progress = Awaited<ReturnType<typeof progress>>
// (in logical mode, "written" counts what the relay has applied to the event store so far)
const backlogOf = (p: Progress) => `${p.written - p.stored} (${p.written - p.published} not yet in Kafka, ${p.published - p.stored} in Kafka)`

/**
 * Waits until the history holds every written event; false when `timeoutMs` ran out first. In logical mode the event
 * store is written by the relay, so "every written event" also needs the relay's slot past the WAL written so far.
 */
async function drain(db: Db, pipeline: Pipeline, timeoutMs: number, log: (m: string) => void): Promise<{ drained: boolean; last: Progress }> {
  const started = Date.now()
  let lastLog = started
  const [wal] = await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')
  const decoded = async () =>
    pipeline.config.capture.mode !== 'logical' ||
    (await db.query('select 1 from pg_replication_slots where slot_name = $1 and confirmed_flush_lsn >= $2::pg_lsn', [pipeline.config.relay.slot, wal!.lsn]))
      .length > 0
  for (;;) {
    const p = await progress(db, pipeline)
    if (p.stored >= p.written && (await decoded())) return { drained: true, last: p }
    if (Date.now() - started > timeoutMs) return { drained: false, last: p }
    if (Date.now() - lastLog >= 10_000) {
      lastLog = Date.now()
      log(`draining: backlog ${backlogOf(p)} after ${((Date.now() - started) / 1000).toFixed(0)} s`)
    }
    await Bun.sleep(250)
  }
}

export const e2e: BenchCase = async ({ scale, log }) => [
  ...(await endToEnd('outbox', scale, log)),
  ...(await endToEnd('logical', scale, (m) => log(`logical: ${m}`))),
]

async function endToEnd(mode: 'outbox' | 'logical', scale: number, log: (m: string) => void): Promise<CaseResult[]> {
  const pipeline = await createPipeline('e2e', { CDC_LOG_LEVEL: 'warn', CDC_CAPTURE_MODE: mode })
  const name = (what: string) => (mode === 'outbox' ? `e2e/${what}` : `e2e/${mode}/${what}`)
  pipeline.start('all')
  const db = connect({ url: pipeline.config.postgres.url, max: 8 })
  const store = await connectMongo({ url: pipeline.config.mongo.url, database: pipeline.config.mongo.database })
  try {
    await waitFor(async () => (await fetch(`${pipeline.api}/readyz`).catch(() => null))?.ok ?? false, 60_000, 'cdc all')
    const seconds = Math.max(5, 20 * scale)
    // Bounded: a pipeline that falls far behind is reported as such instead of holding the whole run.
    const drainMs = Math.max(60_000, 6 * seconds * 1000)

    // Phase 1: as fast as the writers go; sustained = events through the whole pipeline per second until drained.
    log(`sustained load for ${seconds} s (3 SQL writers, 2 API writers)`)
    const processes = pipelineProcesses(pipeline, 'all')
    const cpuBefore = processes.map((p) => usage(p.pid(), p.children).cpuSeconds)
    const start = Date.now()
    let stop = false
    const until = () => stop
    const writers = [sqlWriter(db, 1, until), sqlWriter(db, 2, until), sqlWriter(db, 3, until), apiWriter(pipeline.api, 1, until), apiWriter(pipeline.api, 2, until)]
    await Bun.sleep(seconds * 1000)
    stop = true
    await Promise.all(writers)
    const atStop = await progress(db, pipeline)
    log(`load stopped: ${atStop.written} events written, backlog ${backlogOf(atStop)}; draining (at most ${drainMs / 1000} s)`)
    const first = await drain(db, pipeline, drainMs, log)
    const drainedAt = Date.now()
    const elapsed = (drainedAt - start) / 1000
    const cpu = processes.map((p, i) => `${p.name} ${(((usage(p.pid(), p.children).cpuSeconds - cpuBefore[i]!) / elapsed) * 100).toFixed(0)}%`)
    const sustained = first.last.stored / elapsed
    const throughput: CaseResult = {
      name: name('sustained'),
      stage: 'e2e',
      unit: 'event',
      ours: { perSecond: sustained, count: first.last.stored, seconds: elapsed },
      // the guide's goal: the history keeps up with what the writers commit (≥ 0.95× of it, backlog bounded)
      raw: { perSecond: first.last.written / seconds, count: first.last.written, seconds },
      ratio: sustained / (first.last.written / seconds),
      target: { ratio: 0.95 },
      notes:
        `ours = into the history until drained, raw = written during the load: ${first.last.written} events in ${seconds} s of load (SQL: 3 writers, ${ROWS_PER_STATEMENT}-row statements; API: 2 writers) = ` +
        `${(first.last.written / seconds).toFixed(0)}/s written; backlog at end of load ${backlogOf(atStop)}` +
        (mode === 'logical' ? ' (counted from the events the relay had applied by then); ' : '; ') +
        (first.drained ? `drained ${(elapsed - seconds).toFixed(1)} s later` : `NOT drained after ${drainMs / 1000} s: backlog ${backlogOf(first.last)}`) +
        `; CPU (of one core) from load start to drained: ${cpu.join(', ')}; capture mode ${mode}`,
    }
    if (!first.drained) return [throughput]

    // Phase 2: half that load, paced; latency of every event written in this phase.
    const half = sustained / 2
    log(`paced load at ${half.toFixed(0)} events/s for ${seconds} s`)
    stop = false
    // The relay's share of it (wal and logical modes): its histogram of source commit → committed in Kafka.
    const relayDelays = () => histogramOf(pipeline.api, 'cdc_relay_commit_to_kafka_seconds', 'mode="logical"')
    const relayBefore = mode === 'logical' ? await relayDelays() : undefined
    const paced = [0, 1, 2].map((w) => sqlWriter(db, 4 + w, until, { perSecond: half / 3, phase: w / 3 }))
    const pacedStart = Date.now()
    await Bun.sleep(seconds * 1000)
    stop = true
    await Promise.all(paced)
    const pacedSeconds = (Date.now() - pacedStart) / 1000
    const atPacedStop = await progress(db, pipeline)
    const second = await drain(db, pipeline, drainMs, log)
    const docs = await store.collection('customers_history').find({ reason: PACED_REASON }, { projection: { occurredAt: 1, storedAt: 1 } })
    const latencies = docs
      .map((d) => Date.parse(String(d.storedAt)) - Date.parse(String(d.occurredAt)))
      .filter((x) => Number.isFinite(x))
    const relayAfter = relayBefore && (await relayDelays())
    const [relayP50, relayP99] = relayAfter ? [0.5, 0.99].map((q) => quantileMs(relayBefore!, relayAfter, q)) : []
    const relayShare =
      relayP50 !== undefined && relayP99 !== undefined
        ? `; of which source commit → in Kafka (the relay's histogram, per source transaction, interpolated in its buckets): p50 ${relayP50.toFixed(0)} ms, p99 ${relayP99.toFixed(0)} ms`
        : ''
    const latency: CaseResult = {
      name: name('latency-at-half-load'),
      stage: 'e2e',
      unit: 'event',
      ours: latencyMeasurement(latencies, pacedSeconds),
      target: { p99Ms: 250 },
      notes:
        `commit→history (storedAt − occurredAt) of each event, 3 paced SQL writers a third of a period apart; backlog at end of load ${backlogOf(atPacedStop)}, ` +
        (second.drained ? 'drained' : `NOT drained after ${drainMs / 1000} s`) +
        relayShare,
    }
    return [throughput, latency]
  } finally {
    await pipeline.stopAll()
    await store.close()
    await db.end()
    await pipeline.dropDatabase()
  }
}
