// History reads as the history grows: one collection bulk-loaded with synthetic history of the consumer's real shape
// (src/consume/history.ts historyDoc, day buckets, and one state per aggregate), grown step by step to each size,
// and at each size the latency of one request at a time through the HTTP API (each size's own `cdc serve` process):
//   history-page  GET /history/customers/:id?limit=50         (random aggregate)
//   at            GET /history/customers/:id/at?ts=…           (random aggregate, an instant inside its history)
//   audit-actor   GET /history?table=customers&actor=…&limit=50 (random actor, newest first)
//   audit-window  GET /history?table=customers&from=…&to=…&limit=50 (a random one-day window)
//   state         GET /state/customers/:id                     (random aggregate)
// Ops: CDC_BENCH_READ_OPS (comma-separated names above), default all. Sizes: CDC_BENCH_READ_SIZES (comma-separated document counts), default 10k, 100k, 1M × --scale, each in its own
// database, measured round robin so that load on a shared machine hits every size alike. The history spans one year
// (aggregates start at random days), 20 events per aggregate an hour apart, 100 actors: buckets get denser as it grows.
import type { BenchCase, CaseResult } from '../types.ts'
import { latencyMeasurement } from '../types.ts'
import { ROOT, createTestEnv } from '../../test/support/env.ts'
import { testEnvSettings } from '../pipeline.ts'
import type { Config } from '../../src/config.ts'
import { migrate } from '../../src/capture/migrate.ts'
import { DAY_LISTS_COLLECTION, DAYS_COLLECTION, ensureHistoryIndexes, historyDoc, reconcileDayLists, type DayDoc } from '../../src/consume/history.ts'
import type { CdcEvent } from '../../src/events.ts'
import { StoreError, type Doc } from '../../src/clients/mongo.ts'
import { connect } from '../../src/clients/postgres.ts'

const PER_AGGREGATE = 20
const ACTORS = 100
const SPAN_DAYS = 365
const T0 = Date.UTC(2025, 0, 1)
const REQUESTS = 150
// Measured (8k documents into an `_id`-only collection, contended machine, noisy): 4 writers × 1000 ≈ 750/s, 4 × 500
// and 8 × 500 ≈ 700/s, 2 × 2000 ≈ 580/s, 1 × 8000 ≈ 520/s: FerretDB inserts a batch 100 rows per statement in turn,
// so more writers keep more of its PostgreSQL connections busy.
const LOAD_BATCH = 1000
const LOADERS = 4

/** Deterministic pseudo-random numbers (the same history in every run). */
function rng(seed: number) {
  let s = seed >>> 0
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32)
}

const startOf = (aggregate: number) => T0 + Math.floor(rng(aggregate + 1)() * (SPAN_DAYS - 1) * 86_400_000)
const iso = (ms: number) => new Date(ms).toISOString().replace('Z', '000Z')

function eventOf(i: number): CdcEvent {
  const a = Math.floor(i / PER_AGGREGATE)
  const version = (i % PER_AGGREGATE) + 1
  const id = String(a)
  const name = (v: number) => `Customer ${a} v${v}`
  return {
    id: `0190${i.toString(16).padStart(8, '0')}-0000-7000-8000-000000000000`,
    type: version === 1 ? 'CustomerCreated' : 'CustomerUpdated',
    op: version === 1 ? 'c' : 'u',
    aggregate: { type: 'customers', id },
    version,
    tx: { id: String(1_000_000 + i), index: 0, size: 1 },
    // An aggregate's events an hour apart from a random start within the year.
    occurredAt: iso(startOf(a) + version * 3_600_000),
    actor: { id: `user${(a * 7 + version) % ACTORS}`, source: 'api' },
    reason: version % 3 === 0 ? 'support ticket' : null,
    correlationId: null,
    causationId: null,
    changes: [{ path: 'name', before: version === 1 ? null : name(version - 1), after: name(version) }],
    before: version === 1 ? null : { id: a, name: name(version - 1), email: `c${a}@example.com`, address: '1 Main Street', phone: null },
    after: { id: a, name: name(version), email: `c${a}@example.com`, address: '1 Main Street', phone: null },
    schema: 1,
  }
}

const label = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n))

/** One size: its own MongoDB database (collections grown from empty) behind its own `cdc serve`. */
interface Load {
  seconds: number
  insertSeconds: number
  indexSeconds: number
}

interface Instance {
  size: number
  aggregates: number
  loaded: Load
  /** Its MongoDB database, and the PostgreSQL server of the local stack. */
  database: string
  postgresUrl: string
  get(path: string): Promise<number>
  close(): Promise<void>
}

/**
 * `cdc serve` as its own process for one size's database, as deployed: not inside the bench process, whose bulk load
 * leaves a large heap to collect and whose client shares the event loop with the server.
 */
async function startServe(config: Config): Promise<{ url: string; stop(): Promise<void> }> {
  const port = 19000 + Math.floor(Math.random() * 1000)
  const child = Bun.spawn(['bun', 'run', `${ROOT}src/cli.ts`, 'serve'], {
    env: {
      ...(process.env as Record<string, string>),
      ...testEnvSettings(config),
      CDC_DEMO_ENABLED: 'true',
      CDC_HTTP_PORT: String(port),
      CDC_LOG_LEVEL: 'warn',
    },
    stdout: 'ignore',
    stderr: 'ignore',
  })
  const url = `http://127.0.0.1:${port}/`
  const stop = async () => {
    child.kill('SIGTERM')
    await Promise.race([child.exited, Bun.sleep(10_000)])
    child.kill(9)
  }
  for (const deadline = Date.now() + 60_000; ; await Bun.sleep(250)) {
    if ((await fetch(`${url}readyz`).catch(() => null))?.ok) return { url, stop }
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop()
      throw new Error(`cdc serve did not become ready (exit code ${child.exitCode})`)
    }
  }
}

async function loadInstance(size: number, log: (m: string) => void): Promise<Instance> {
  const env = await createTestEnv()
  // Tables are served from the tracked set in the database (the demo's, once migrated).
  await migrate(env.rt)
  const server = await startServe(env.config)
  const store = await env.rt.mongo()
  // The collections are large: drop them (a deleteMany of a million documents outlives any time limit).
  const drop = async () => {
    for (const c of ['customers_history', 'customers_state', DAYS_COLLECTION, DAY_LISTS_COLLECTION]) await store.collection(c).drop()
  }
  let loaded: Load
  try {
    // History in big unordered batches from a few writers into a collection with only its `_id` index, then its read
    // indexes built over the loaded documents (measured: far faster than maintaining them on every insert), then the
    // states and day buckets (insert-only, like the consumer).
    const t0 = performance.now()
    const history = store.collection('customers_history')
    const next = { i: 0 }
    await Promise.all(
      Array.from({ length: LOADERS }, async () => {
        while (next.i < size) {
          const from = next.i
          const to = Math.min(size, from + LOAD_BATCH)
          next.i = to
          const docs = Array.from({ length: to - from }, (_, k) => {
            const e = eventOf(from + k)
            return historyDoc(e, { topic: 'cdc.customers', partition: 0, offset: String(from + k), key: e.aggregate.id, value: null, headers: {}, timestamp: '0' }, e.occurredAt)
          })
          // A batch that outlived the client's time limit may still land: inserting it again only finds duplicates.
          for (let attempt = 1; ; attempt++) {
            try {
              await history.insertMany(docs)
              break
            } catch (error) {
              if (!(error instanceof StoreError) || !error.transient || attempt >= 5) throw error
            }
          }
        }
      }),
    )
    const inserted = performance.now()
    await ensureHistoryIndexes(store, ['customers'])
    const indexed = performance.now()
    const aggregates = Math.floor(size / PER_AGGREGATE)
    const stateDocs: Doc[] = []
    for (let a = 0; a < aggregates; a++) {
      const last = eventOf(a * PER_AGGREGATE + PER_AGGREGATE - 1)
      stateDocs.push({ _id: String(a), aggregate: last.aggregate, version: last.version, deleted: false, row: last.after, occurredAt: last.occurredAt, eventId: last.id })
    }
    const dayDocs = new Map<string, DayDoc>()
    for (let i = 0; i < size; i++) {
      const e = eventOf(i)
      const day = e.occurredAt.slice(0, 10)
      for (const actor of [null, e.actor.id]) {
        const _id = JSON.stringify(['customers', actor, day])
        dayDocs.set(_id, { _id, scope: JSON.stringify(['customers', actor]), table: 'customers', day })
      }
    }
    for (let i = 0; i < stateDocs.length; i += LOAD_BATCH) await store.collection('customers_state').insertMany(stateDocs.slice(i, i + LOAD_BATCH))
    const dayList = [...dayDocs.values()]
    for (let i = 0; i < dayList.length; i += LOAD_BATCH) await store.collection(DAYS_COLLECTION).insertMany(dayList.slice(i, i + LOAD_BATCH))
    // (each scope's list of days, as recordDays keeps it)
    await reconcileDayLists(store, 'customers')
    const seconds = (performance.now() - t0) / 1000
    loaded = { seconds, insertSeconds: (inserted - t0) / 1000, indexSeconds: (indexed - inserted) / 1000 }
    log(
      `${label(size)}: loaded in ${seconds.toFixed(1)} s (${(size / seconds).toFixed(0)} history documents/s; insert ${loaded.insertSeconds.toFixed(1)} s, indexes ${loaded.indexSeconds.toFixed(1)} s)`,
    )
  } catch (error) {
    await server.stop()
    await drop().catch(() => {})
    await env.cleanup()
    throw error
  }
  return {
    size,
    aggregates: Math.floor(size / PER_AGGREGATE),
    loaded,
    database: env.rt.config.mongo.database,
    postgresUrl: env.rt.config.postgres.url,
    async get(path) {
      const t0 = performance.now()
      // Bounded: a request that never answers fails the case instead of stalling the run.
      const r = await fetch(new URL(path, server.url), { signal: AbortSignal.timeout(60_000) })
      await r.arrayBuffer()
      if (r.status !== 200) throw new Error(`GET ${path}: ${r.status}`)
      return performance.now() - t0
    },
    async close() {
      await server.stop()
      await drop().catch(() => {})
      await env.cleanup()
    },
  }
}

/**
 * Measured at rest, not in the bulk load's wake: on the local FerretDB (its documents in the stack's PostgreSQL) the
 * loaded tables are vacuumed and analyzed and a checkpoint written first, so that autovacuum's pass over a 2.7 GB
 * table and the checkpoints of the load do not run during the measurement. Elsewhere (real MongoDB) nothing to do.
 */
async function settle(instances: Instance[], log: (m: string) => void) {
  const url = new URL(instances[0]!.postgresUrl)
  url.pathname = '/ferretdb'
  const pg = connect({ url: url.toString(), max: 1 })
  try {
    const t0 = performance.now()
    for (const inst of instances) {
      const tables = await pg.query<{ name: string }>("select format('%I.%I', schemaname, tablename) as name from pg_tables where schemaname = $1", [inst.database])
      for (const { name } of tables) await pg.query(`vacuum (analyze) ${name}`)
    }
    await pg.query('checkpoint')
    log(`local FerretDB backend vacuumed, analyzed and checkpointed in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  } catch (error) {
    log(`no local FerretDB backend to settle (${(error as Error).message})`)
  } finally {
    await pg.end()
  }
}

export const reads: BenchCase = async ({ scale, log }) => {
  const sizes = (process.env.CDC_BENCH_READ_SIZES ?? '10000,100000,1000000')
    .split(',')
    .map((s) => Math.max(PER_AGGREGATE * 10, Math.round(Number(s) * scale)))
    .sort((a, b) => a - b)
  const instances: Instance[] = []
  try {
    for (const size of sizes) instances.push(await loadInstance(size, log))
    await settle(instances, log)
    const random = rng(42)
    const pick = (n: number) => Math.floor(random() * n)
    const ops: [string, (aggregates: number) => string][] = [
      ['history-page', (n) => `/history/customers/${pick(n)}?limit=50`],
      [
        'at',
        (n) => {
          const a = pick(n)
          return `/history/customers/${a}/at?ts=${encodeURIComponent(iso(startOf(a) + (1 + pick(PER_AGGREGATE)) * 3_600_000 + 1000))}`
        },
      ],
      ['audit-actor', () => `/history?table=customers&actor=user${pick(ACTORS)}&order=desc&limit=50`],
      [
        'audit-window',
        () => {
          const from = T0 + pick(SPAN_DAYS - 1) * 86_400_000
          return `/history?table=customers&from=${iso(from)}&to=${iso(from + 86_400_000)}&limit=50`
        },
      ],
      ['state', (n) => `/state/customers/${pick(n)}`],
    ]
    const only = process.env.CDC_BENCH_READ_OPS?.split(',')
    // How fast the history was loaded (so whether a 1M run fits in the stage's budget).
    const results: CaseResult[] = instances.map((inst) => ({
      name: `reads/load@${label(inst.size)}`,
      stage: 'reads',
      unit: 'history document',
      ours: { perSecond: inst.size / inst.loaded.seconds, count: inst.size, seconds: inst.loaded.seconds },
      notes: `bulk load: insertMany ${LOAD_BATCH} × ${LOADERS} writers ${inst.loaded.insertSeconds.toFixed(1)} s, then the read indexes ${inst.loaded.indexSeconds.toFixed(1)} s; states, day buckets and day lists the rest`,
    }))
    const targets: Record<string, number> = { 'history-page': 50, 'audit-actor': 200, 'audit-window': 200 }
    for (const [op, path] of ops.filter(([op]) => !only || only.includes(op))) {
      // Round robin over the sizes, one request at a time: load on the machine hits every size alike.
      const latencies = instances.map(() => [] as number[])
      for (const inst of instances) for (let i = 0; i < 10; i++) await inst.get(path(inst.aggregates)) // warm-up
      const started = performance.now()
      for (let i = 0; i < REQUESTS; i++) {
        for (const [k, inst] of instances.entries()) latencies[k]!.push(await inst.get(path(inst.aggregates)))
      }
      const seconds = (performance.now() - started) / 1000 / instances.length
      const measured = latencies.map((l) => latencyMeasurement(l, seconds))
      const base = measured[0]!.p50Ms!
      for (const [k, inst] of instances.entries()) {
        const m = measured[k]!
        log(`${label(inst.size)} ${op}: p50 ${m.p50Ms!.toFixed(1)} ms, p95 ${m.p95Ms!.toFixed(1)} ms, p99 ${m.p99Ms!.toFixed(1)} ms`)
        results.push({
          name: `reads/${op}@${label(inst.size)}`,
          stage: 'reads',
          unit: 'request',
          ours: m,
          ...(targets[op] !== undefined && inst.size >= 1_000_000 ? { target: { p99Ms: targets[op] } } : {}),
          notes: `${label(inst.size)} history documents; one request at a time over HTTP to its own cdc serve, interleaved with the other sizes, after the load was vacuumed and checkpointed; p50(${label(inst.size)})/p50(${label(sizes[0]!)}) = ${(m.p50Ms! / base).toFixed(2)}`,
        })
      }
    }
    return results
  } finally {
    for (const inst of instances) await inst.close().catch(() => {})
  }
}
