// `bun run chaos [--seconds N] [--rounds R] [--sql-rows K] [--out DIR]`: a steady write load (API + plain SQL) with the relay, consumer and API each in its
// own process, while faults are injected in turn: kill -9 and restart each role, stop and restart PostgreSQL, Kafka and
// the MongoDB server, cut the relay off from PostgreSQL (Kafka still reachable), stall the MongoDB server. Then it waits for the pipeline to drain and checks, against cdc.event_store, that every
// committed event is in the MongoDB history exactly once, versions are gapless per aggregate, the read model equals
// the PostgreSQL rows and the DLQ is empty. Exit code 1 on any loss, duplicate or mismatch. Loopback only.
// The faults are injected R times over the run (evenly spaced); each plain-SQL transaction updates K rows (K events), so
// a long run reaches 100,000+ events on a small machine. It writes <out>/chaos-<capture>.json (default bench/results)
// and rebuilds <out>/chaos-latest.{json,md} from every capture mode's last result there.
import { cpus, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { connect, type Db } from '../src/clients/postgres.ts'
import { connectMongo, healingStore } from '../src/clients/mongo.ts'
import { createKafka, messagesBehind } from '../src/clients/kafka.ts'
import { createPipeline, ROOT, stack, waitFor, type RoleName } from './pipeline.ts'
import { startProxy } from './tcp-proxy.ts'
import { VERIFY_TIMEOUT_MS, verdictRows, verifyPipeline } from './verify.ts'
import { publishChaos } from './chaos-report.ts'
import { consumedTopics } from '../src/topics.ts'

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    seconds: { type: 'string' },
    'drain-seconds': { type: 'string' },
    mode: { type: 'string' },
    capture: { type: 'string' },
    rounds: { type: 'string' },
    'sql-rows': { type: 'string' },
    'sql-rate': { type: 'string' },
    out: { type: 'string' },
    faults: { type: 'string' },
  },
  strict: true,
})
const seconds = Number(values.seconds ?? 180)
const drainSeconds = Number(values['drain-seconds'] ?? 180)
const relayMode = values.mode ?? 'poll'
const captureMode = values.capture ?? 'outbox'
const rounds = Number(values.rounds ?? 1)
const sqlRows = Number(values['sql-rows'] ?? 1)
// Events per second the plain-SQL load holds at most (a pipeline that cannot keep up would only build a backlog).
const sqlRate = Number(values['sql-rate'] ?? Infinity)
// own: only the faults that touch this run's processes (its roles, its relay's proxy), for a second run beside one that
// stops and stalls the shared servers (both runs live through those).
const faultSet = values.faults ?? 'all'
const outDir = values.out ?? `${ROOT}bench/results`
if (
  !(seconds >= 20) ||
  !(drainSeconds > 0) ||
  !['poll', 'wal'].includes(relayMode) ||
  !['outbox', 'emit', 'logical'].includes(captureMode) ||
  !(Number.isInteger(rounds) && rounds >= 1) ||
  !(Number.isInteger(sqlRows) && sqlRows >= 1 && sqlRows <= 500) ||
  !(sqlRate > 0) ||
  !['all', 'own'].includes(faultSet)
) {
  console.error('chaos: --seconds must be ≥ 20, --drain-seconds > 0, --mode poll|wal, --capture outbox|emit|logical, --rounds ≥ 1, --sql-rows 1..500, --sql-rate > 0, --faults all|own')
  process.exit(2)
}
const startedAt = new Date()
const loadAtStart = loadavg()[0]!
// emit mode writes no outbox rows: its relay reads the WAL (logical mode ignores relay.mode)
const effectiveRelayMode = captureMode === 'emit' ? 'wal' : relayMode

const say = (m: string) => console.error(`[chaos ${new Date().toISOString().slice(11, 19)}] ${m}`)
const pipeline = await createPipeline('chaos', { CDC_RELAY_MODE: effectiveRelayMode, CDC_CAPTURE_MODE: captureMode })
const { config, tag, logDir, api } = pipeline
// The relay reaches PostgreSQL through a proxy the run can cut (a partition between the leader and its database while
// Kafka stays reachable).
const pgUrl = new URL(config.postgres.url)
const pgProxy = startProxy({ host: pgUrl.hostname, port: Number(pgUrl.port) })
pgUrl.port = String(pgProxy.port)
pipeline.setRoleEnv('relay', { CDC_POSTGRES_URL: pgUrl.toString() })
for (const role of ['relay', 'consume', 'serve'] as const) pipeline.start(role)
const db: Db = connect({ url: config.postgres.url, max: 6 })
await waitFor(async () => (await fetch(`${api}/healthz`).catch(() => null))?.ok ?? false, 120_000, 'API up')

// --- the load: API commands and plain SQL, tolerant of outages (only committed writes count) -----------------------
let stopLoad = false
const stats = { apiOk: 0, apiFailed: 0, sqlOk: 0, sqlFailed: 0 }
const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)]!
const customerIds: number[] = []
const productIds: number[] = []
const orderIds: number[] = []

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const r = await fetch(`${api}${path}`, {
    method,
    headers: { 'content-type': 'application/json', 'x-actor': pick(['alice', 'bob', 'carol']), 'x-reason': 'chaos load', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  })
  const json = r.headers.get('content-type')?.includes('json') ? await r.json() : null
  if (!r.ok) throw new Error(`${method} ${path} → ${r.status}`)
  return json as Record<string, unknown>
}

async function apiLoop(n: number) {
  let i = 0
  while (!stopLoad) {
    i++
    await Bun.sleep(40) // ~25 commands/s per loop: chaos proves correctness under faults, not throughput
    try {
      const step = i % 5
      if (step === 0 || customerIds.length < 5) {
        const c = await call('POST', '/customers', { name: `C${n}-${i}`, email: `c${n}-${i}-${tag}@example.com`, address: `${i} Chaos Rd` })
        customerIds.push(Number(c.id))
      } else if (step === 1) {
        await call('PATCH', `/customers/${pick(customerIds)}`, { name: `Renamed ${n}-${i}`, address: `${i} Other St` })
      } else if (step === 2 && productIds.length > 0) {
        const o = await call('POST', '/orders', {
          customerId: pick(customerIds),
          shippingAddress: `${i} Ship Ln`,
          lines: [{ productId: pick(productIds), quantity: 1 + (i % 3) }],
        })
        orderIds.push(Number(o.id))
      } else if (step === 3 && orderIds.length > 0) {
        await call('POST', `/orders/${pick(orderIds)}/status`, { status: pick(['PAYMENT_CONFIRMED', 'CANCELLED']) }).catch((e) => {
          if (!String(e).includes('409')) throw e // a forbidden transition is fine
        })
      } else {
        await call('GET', `/customers/${pick(customerIds)}`)
        continue
      }
      stats.apiOk++
    } catch {
      stats.apiFailed++
      await Bun.sleep(200)
    }
  }
}

const SQL_LOOPS = 2
async function sqlLoop() {
  let i = 0
  while (!stopLoad) {
    i++
    const started = Date.now()
    let events = 0
    try {
      await db.begin(async (tx) => {
        await tx.query("select set_config('cdc.actor', 'batch-job', true), set_config('cdc.reason', 'nightly sync', true)")
        if (i % 3 === 0 || productIds.length < 3) {
          // a tenth of K new products at once, so the updates below soon have K distinct rows to touch
          const created = await tx.query<{ id: number }>(
            'insert into products (category, name, price) select $1, $2 || n, $3 from generate_series(1, $4::int) n returning id',
            [pick(['books', 'tools', 'games']), `P${i}-`, (i % 50) + 0.99, Math.ceil(sqlRows / 10)],
          )
          productIds.push(...created.map((p) => p.id))
          events = created.length
        } else {
          // K products in one statement (K events in one transaction)
          const ids = [...new Set(Array.from({ length: sqlRows }, () => pick(productIds)))]
          await tx.query('update products set price = price + 1 where id = any($1::int[])', [ids])
          events = ids.length + 1
          await tx.query('update customers set phone = $1 where id = $2', [`+1-555-${i}`, pick(customerIds.length ? customerIds : [0])])
        }
      })
      stats.sqlOk++
    } catch {
      stats.sqlFailed++
      await Bun.sleep(200)
    }
    await Bun.sleep(Math.max(40, (events / (sqlRate / SQL_LOOPS)) * 1000 - (Date.now() - started)))
  }
}

const loops = [apiLoop(1), apiLoop(2), apiLoop(3), ...Array.from({ length: SQL_LOOPS }, sqlLoop)]

// --- the faults, in turn ---------------------------------------------------------------------------------------------
interface Fault {
  name: string
  inject(): Promise<void>
}
const restartAfterKill = (role: RoleName): Fault => ({
  name: `kill -9 ${role}, restart`,
  async inject() {
    await pipeline.kill9(role)
    await Bun.sleep(1000)
    pipeline.start(role)
  },
})
const serverOutage = (server: 'postgres' | 'kafka' | 'mongo'): Fault => ({
  name: `stop ${server}, restart`,
  async inject() {
    stack('down', server)
    await Bun.sleep(4000)
    stack('up', server)
  },
})
const relayCutOff: Fault = {
  name: 'relay cut off from PostgreSQL for 10 s (Kafka reachable)',
  inject: () => pgProxy.cut(10_000),
}
const mongoStalled: Fault = {
  name: 'MongoDB-wire server stalled 30 s (SIGSTOP, then SIGCONT)',
  async inject() {
    const pid = Number((await Bun.file(`${process.env.CDC_STACK_DIR ?? `${ROOT}.stack`}/mongo/ferretdb.pid`).text()).trim())
    process.kill(pid, 'SIGSTOP')
    try {
      await Bun.sleep(30_000)
    } finally {
      process.kill(pid, 'SIGCONT')
    }
  },
}
const faults: Fault[] = [
  restartAfterKill('relay'),
  restartAfterKill('consume'),
  restartAfterKill('serve'),
  ...(faultSet === 'all' ? [serverOutage('postgres'), serverOutage('kafka'), serverOutage('mongo')] : []),
  relayCutOff,
  ...(faultSet === 'all' ? [mongoStalled] : []),
]
const injected: { fault: string; at: string; ok: boolean; error?: string }[] = []
const schedule = Array.from({ length: rounds }, () => faults).flat()
const step = (seconds * 1000) / (schedule.length + 1)
const t0 = Date.now()
for (const fault of schedule) {
  await Bun.sleep(Math.max(0, t0 + step * (injected.length + 1) - Date.now()))
  say(`fault: ${fault.name}`)
  try {
    await fault.inject()
    injected.push({ fault: fault.name, at: new Date().toISOString(), ok: true })
  } catch (error) {
    injected.push({ fault: fault.name, at: new Date().toISOString(), ok: false, error: (error as Error).message })
    stack('up')
  }
}
await Bun.sleep(Math.max(0, t0 + seconds * 1000 - Date.now()))
const loadSeconds = (Date.now() - t0) / 1000
stopLoad = true
await Promise.all(loops)
say(`load stopped: api ok ${stats.apiOk} failed ${stats.apiFailed}, sql ok ${stats.sqlOk} failed ${stats.sqlFailed}`)

// --- drain and verify -------------------------------------------------------------------------------------------------
// Every server must be back (a run with only its own faults leaves that to the run that stops them).
if (faultSet === 'all') stack('up')
// Bounded operations: a MongoDB server that stopped answering fails the run instead of hanging it.
const store = healingStore(() => connectMongo({ url: config.mongo.url, database: config.mongo.database, maxTimeMs: VERIFY_TIMEOUT_MS }), {
  operationTimeoutMs: VERIFY_TIMEOUT_MS + 10_000,
})
const tables = config.capture.tracked
const eventCount = async () => Number((await db.query<{ n: number }>('select count(*)::int as n from cdc.event_store'))[0]!.n)
if (captureMode === 'logical') {
  // The relay writes the event store from the WAL: what it must hold is known only once it has decoded every commit.
  const [end] = await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')
  say('logical mode: waiting for the relay to decode every commit')
  await waitFor(
    async () =>
      (await db.query<{ ok: boolean }>('select confirmed_flush_lsn >= $1::pg_lsn as ok from pg_replication_slots where slot_name = $2', [
        end!.lsn,
        config.relay.slot,
      ]))[0]?.ok ?? false,
    drainSeconds * 1000,
    'the relay to catch up with the WAL',
  )
}
const written = await eventCount()
say(`waiting for the pipeline to drain ${written} events`)
// Drained: the outbox is empty and the consumer group has committed every message of its topics (stored or
// dead-lettered; the check below tells which). Asked of PostgreSQL and Kafka: counting the history collections
// instead reads them whole on FerretDB, and those scans starved the consumer they waited for.
const kafka = createKafka({ brokers: config.kafka.brokers, clientId: `${tag}-verify` })
const topics = consumedTopics(config, tables, await kafka.listTopics().catch(() => []))
let lastSaid = 0
const drained = await waitFor(
  async () => {
    const [outbox] = await db.query<{ n: number }>('select count(*)::int as n from cdc.outbox')
    let lag = 0
    for (const topic of topics) lag += messagesBehind(await kafka.lag(config.consume.groupId, topic))
    if (Date.now() - lastSaid > 30_000) {
      lastSaid = Date.now()
      say(`draining: outbox ${outbox!.n}, consumer lag ${lag}`)
    }
    return outbox!.n === 0 && lag === 0
  },
  drainSeconds * 1000,
  'drain',
  2000,
).then(
  () => true,
  () => false,
)

const verdict = await verifyPipeline({ config, db, store, kafka, groupId: `${tag}-verify` })

// --- report -----------------------------------------------------------------------------------------------------------
await pipeline.stopAll()
pgProxy.close()
await kafka.close()
await store.close()
await db.end()

const ok = drained && verdict.ok
const relayShown = captureMode === 'logical' ? 'logical' : effectiveRelayMode
const table = [
  `Chaos run ${tag}: ${seconds} s of load, capture mode ${captureMode}, relay mode ${relayShown}, logs in ${logDir}`,
  '',
  '| fault | at | result |',
  '| --- | --- | --- |',
  ...injected.map((f) => `| ${f.fault} | ${f.at.slice(11, 19)} | ${f.ok ? 'injected, recovered' : `FAILED: ${f.error}`} |`),
  '',
  '| figure | value |',
  '| --- | --- |',
  `| API commands ok / failed during faults | ${stats.apiOk} / ${stats.apiFailed} |`,
  `| SQL transactions ok / failed during faults | ${stats.sqlOk} / ${stats.sqlFailed} |`,
  ...verdictRows(verdict),
  `| drained | ${drained ? 'yes' : 'NO'} |`,
  '',
  ok ? 'RESULT: nothing lost, nothing duplicated' : `RESULT: FAILED\n${verdict.problems.slice(0, 30).join('\n')}`,
].join('\n')
console.log(table)
await Bun.write(`${logDir}/report.md`, `${table}\n`)
{
  await publishChaos(outDir, {
    at: startedAt.toISOString(),
    capture: captureMode,
    relayMode: relayShown,
    loadSeconds,
    durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
    rounds,
    sqlRows,
    sqlRate: Number.isFinite(sqlRate) ? sqlRate : null,
    faultSet,
    faults: injected,
    load: stats,
    drained,
    verdict: { ...verdict, problems: verdict.problems.slice(0, 30) },
    ok,
    machine: { cpus: cpus().length, loadStart: loadAtStart, loadEnd: loadavg()[0]! },
  })
}
if (ok) await pipeline.dropDatabase()
process.exit(ok ? 0 : 1)
