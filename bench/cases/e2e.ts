// End to end with `cdc all` running as its own process: a write load through plain SQL (multi-row statements) and
// through the API, first as fast as the writers go (sustained events/s until the history has drained), then paced at
// half that rate to measure commit→history latency (history storedAt − occurredAt; occurredAt is the capturing
// transaction's timestamp, so this includes the transaction's own few milliseconds).
import { connect, type Db } from '../../src/clients/postgres.ts'
import { connectMongo, type Store } from '../../src/clients/mongo.ts'
import { createPipeline, waitFor } from '../pipeline.ts'
import { percentile, type BenchCase, type CaseResult } from '../types.ts'

const ROWS_PER_STATEMENT = 50

async function sqlWriter(db: Db, id: number, until: () => boolean, pace?: { perSecond: number }) {
  let i = 0
  let written = 0
  const t0 = Date.now()
  while (!until()) {
    i++
    const step = i % 4
    await db.begin(async (tx) => {
      await tx.query("select set_config('cdc.actor', 'bench', true), set_config('cdc.reason', 'load test', true), set_config('cdc.correlation_id', $1, true)", [`w${id}-${i}`])
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

async function apiWriter(api: string, id: number, until: () => boolean, pace?: { perSecond: number }) {
  let i = 0
  const t0 = Date.now()
  while (!until()) {
    i++
    await fetch(`${api}/customers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-actor': 'bench-api', 'x-reason': 'load test' },
      body: JSON.stringify({ name: `Api ${id}-${i}`, email: `api${id}-${i}-${t0}@bench.test`, address: 'HTTP Way' }),
    }).catch(() => {})
    if (pace) {
      const wait = t0 + (i / pace.perSecond) * 1000 - Date.now()
      if (wait > 0) await Bun.sleep(wait)
    }
  }
}

async function counts(db: Db, store: Store) {
  const [row] = await db.query<{ n: number }>("select count(*)::int as n from cdc.event_store where aggregate_type = 'customers'")
  return { written: row!.n, stored: await store.collection('customers_history').count() }
}

export const e2e: BenchCase = async ({ scale, log }) => {
  const pipeline = await createPipeline('e2e', { CDC_LOG_LEVEL: 'warn' })
  pipeline.start('all')
  const db = connect({ url: pipeline.config.postgres.url, max: 8 })
  const store = await connectMongo({ url: pipeline.config.mongo.url, database: pipeline.config.mongo.database })
  try {
    await waitFor(async () => (await fetch(`${pipeline.api}/healthz`).catch(() => null))?.ok ?? false, 60_000, 'cdc all')
    const seconds = Math.max(5, 20 * scale)

    // Phase 1: as fast as the writers go; sustained = events through the whole pipeline per second until drained.
    log(`sustained load for ${seconds} s`)
    const start = Date.now()
    let stop = false
    const until = () => stop
    const writers = [sqlWriter(db, 1, until), sqlWriter(db, 2, until), sqlWriter(db, 3, until), apiWriter(pipeline.api, 1, until), apiWriter(pipeline.api, 2, until)]
    await Bun.sleep(seconds * 1000)
    stop = true
    await Promise.all(writers)
    const atStop = await counts(db, store)
    const backlogAtStop = atStop.written - atStop.stored
    log(`load stopped: ${atStop.written} events written, backlog ${backlogAtStop}; draining`)
    await waitFor(async () => {
      const c = await counts(db, store)
      return c.stored >= c.written
    }, 300_000, 'drain')
    const drainedAt = Date.now()
    const final = await counts(db, store)
    const sustained = final.written / ((drainedAt - start) / 1000)
    const throughput: CaseResult = {
      name: 'e2e/sustained',
      stage: 'e2e',
      unit: 'event',
      ours: { perSecond: sustained, count: final.written, seconds: (drainedAt - start) / 1000 },
      target: { perSecond: 10_000 },
      notes: `SQL (3 writers, ${ROWS_PER_STATEMENT}-row statements) + API (2 writers); backlog at end of load ${backlogAtStop}, drained ${((drainedAt - start) / 1000 - seconds).toFixed(1)} s later`,
    }

    // Phase 2: half that load, paced; latency of every event written in this phase.
    const half = sustained / 2
    const phaseStart = new Date().toISOString()
    log(`paced load at ${half.toFixed(0)} events/s for ${seconds} s`)
    stop = false
    const paced = [
      sqlWriter(db, 4, until, { perSecond: half / 3 }),
      sqlWriter(db, 5, until, { perSecond: half / 3 }),
      sqlWriter(db, 6, until, { perSecond: half / 3 }),
    ]
    const pacedStart = Date.now()
    await Bun.sleep(seconds * 1000)
    stop = true
    await Promise.all(paced)
    const pacedSeconds = (Date.now() - pacedStart) / 1000
    await waitFor(async () => {
      const c = await counts(db, store)
      return c.stored >= c.written
    }, 300_000, 'drain')
    const docs = await store
      .collection('customers_history')
      .find({ occurredAt: { $gte: phaseStart } }, { projection: { occurredAt: 1, storedAt: 1 } })
    const latencies = docs
      .map((d) => Date.parse(String(d.storedAt)) - Date.parse(String(d.occurredAt)))
      .filter((x) => Number.isFinite(x))
      .sort((a, b) => a - b)
    const latency: CaseResult = {
      name: 'e2e/latency-at-half-load',
      stage: 'e2e',
      unit: 'event',
      ours: {
        perSecond: latencies.length / pacedSeconds,
        count: latencies.length,
        seconds: pacedSeconds,
        p50Ms: percentile(latencies, 50),
        p95Ms: percentile(latencies, 95),
        p99Ms: percentile(latencies, 99),
      },
      target: { p99Ms: 250 },
      notes: 'commit→history: storedAt − occurredAt of each event',
    }
    return [throughput, latency]
  } finally {
    await pipeline.stopAll()
    await store.close()
    await db.end()
    await pipeline.dropDatabase()
  }
}
