// HTTP API under a bounded load on loopback: N concurrent fetch loops for a few seconds against `startApi`, for a write
// (POST /customers: validation + write transaction with who/why + capture trigger) and a history read
// (GET /history/customers/:id from MongoDB), each next to the same work done directly with the database client.
import type { BenchCase, CaseResult, Measurement } from '../types.ts'
import { latencyMeasurement } from '../types.ts'
import { createTestEnv } from '../../test/support/env.ts'
import { migrate } from '../../src/capture/migrate.ts'
import { startApi } from '../../src/api/server.ts'
import { ensureHistoryIndexes, readKeys } from '../../src/consume/history.ts'

const CONCURRENCY = 8
const HISTORY_EVENTS = 50

/** Runs `op` in CONCURRENCY loops for `seconds`; latency of every call in ms. */
async function load(seconds: number, op: (n: number) => Promise<void>): Promise<Measurement> {
  const latencies: number[] = []
  const deadline = performance.now() + seconds * 1000
  let n = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now()
        await op(n++)
        latencies.push(performance.now() - t0)
      }
    }),
  )
  return latencyMeasurement(latencies, (performance.now() - started) / 1000)
}

function historyDoc(version: number) {
  const id = Bun.randomUUIDv7()
  const at = new Date(Date.UTC(2026, 0, 1, 0, 0, version)).toISOString().replace('Z', '000Z')
  const event = {
    _id: id, id, type: 'CustomerUpdated', op: 'u', aggregate: { type: 'customers', id: 'bench-1' }, version,
    tx: { id: String(version), index: 0 }, occurredAt: at, actor: { id: 'bench', source: 'api' }, reason: null,
    correlationId: null, causationId: null, changes: [{ path: 'name', before: `n${version - 1}`, after: `n${version}` }],
    before: { id: 1, name: `n${version - 1}` }, after: { id: 1, name: `n${version}` }, schema: 1,
    storedAt: at, kafka: { topic: 'cdc.customers', partition: 0, offset: String(version) },
  }
  // the stored shape: the read keys the consumer adds
  return { ...event, ...readKeys(event) }
}

export const http: BenchCase = async ({ scale, log }) => {
  const seconds = Math.max(1, 3 * scale)
  const env = await createTestEnv((c) => {
    c.http.port = 0 as number
  })
  const server = await (async () => {
    await migrate(env.rt)
    return startApi(env.rt)
  })()
  try {
    const db = env.rt.db()
    const post = (n: number, prefix: string) =>
      fetch(new URL('/customers', server.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-actor': 'bench', 'x-reason': 'load' },
        body: JSON.stringify({ name: `Bench ${n}`, email: `${prefix}${n}@bench.example` }),
      }).then(async (r) => {
        if (r.status !== 201) throw new Error(`POST /customers: ${r.status} ${await r.text()}`)
      })
    await load(0.5, (n) => post(n, 'warm')) // warm-up: JIT, connection pools
    log(`write: ${CONCURRENCY} loops × ${seconds} s`)
    const writeOurs = await load(seconds, (n) => post(n, 'http'))
    const writeRaw = await load(seconds, (n) =>
      db.begin(async (tx) => {
        await tx.query("select set_config('cdc.actor', $1, true), set_config('cdc.reason', $2, true), set_config('cdc.source', 'api', true)", ['bench', 'load'])
        await tx.query('insert into customers (name, email) values ($1, $2) returning *', [`Bench ${n}`, `raw${n}@bench.example`])
      }),
    )

    const store = await env.rt.mongo()
    const history = store.collection('customers_history')
    await ensureHistoryIndexes(store, ['customers'])
    await history.insertMany(Array.from({ length: HISTORY_EVENTS }, (_, i) => historyDoc(i + 1)))
    const read = () =>
      fetch(new URL(`/history/customers/bench-1?limit=${HISTORY_EVENTS}`, server.url)).then(async (r) => {
        if (r.status !== 200) throw new Error(`GET /history: ${r.status}`)
        const body = (await r.json()) as { items: unknown[] }
        // a read that finds nothing is not the same work as the baseline's
        if (body.items.length !== HISTORY_EVENTS) throw new Error(`GET /history: ${body.items.length} of ${HISTORY_EVENTS} events`)
      })
    await load(0.5, read)
    log(`history read: ${CONCURRENCY} loops × ${seconds} s`)
    const readOurs = await load(seconds, read)
    const readRaw = await load(seconds, async () => {
      const docs = await history.find({ aggKey: 'bench-1' }, { sort: { version: 1 }, limit: HISTORY_EVENTS + 1 })
      if (docs.length !== HISTORY_EVENTS) throw new Error(`find: ${docs.length} of ${HISTORY_EVENTS} events`)
    })

    const result = (name: string, ours: Measurement, raw: Measurement, notes: string): CaseResult => ({
      name, stage: 'http', unit: 'request', ours, raw, ratio: ours.perSecond / raw.perSecond, notes,
    })
    return [
      result('http/write', writeOurs, writeRaw, `POST /customers vs the same transaction (set_config + insert) via the db client; ${CONCURRENCY} concurrent`),
      result('http/history-read', readOurs, readRaw, `GET /history/customers/:id (${HISTORY_EVENTS} events) vs the same MongoDB find (aggKey, by version); ${CONCURRENCY} concurrent`),
    ]
  } finally {
    await server.stop()
    await env.cleanup()
  }
}
