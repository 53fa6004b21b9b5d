// `bun run soak [--minutes N] [--rate R | --share S] [--out DIR]`: proof over time. A steady write load through the API
// and plain SQL (every write with who/why) against `cdc all` in its own process, at a share of the highest sustainable
// rate that `bun run bench` measured (e2e/sustained in bench/results/latest.json) or at R events/s. Every 15 s it
// samples RSS and CPU per process, relay backlog and lag, consumer lag, events written and stored, write latency and
// the commit→history latency of probe events (one a second). Then it drains and checks completeness (bench/verify.ts).
// It fails on: no stored progress for 60 s while behind, an unbounded backlog, RSS growing more than 10% per 10
// minutes after warm-up, p99 commit→history above 1 s, any loss or duplicate. Results: <out>/soak-latest.{json,md,svg}.
// Loopback only; every loop is bounded in time.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { connect, type Db } from '../src/clients/postgres.ts'
import { connectMongo, healingStore } from '../src/clients/mongo.ts'
import { createKafka } from '../src/clients/kafka.ts'
import { createPipeline, pipelineProcesses, ROOT, waitFor, type Pipeline, type Proc } from './pipeline.ts'
import { percentile } from './types.ts'
import { VERIFY_TIMEOUT_MS, verdictRows, verifyPipeline, type Verdict } from './verify.ts'
import { usage } from './proc.ts'

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    minutes: { type: 'string' },
    rate: { type: 'string' },
    share: { type: 'string' },
    out: { type: 'string' },
    'latency-budget-ms': { type: 'string' },
  },
  strict: true,
})
const minutes = Number(values.minutes ?? 20)
const share = Number(values.share ?? 0.3)
const outDir = values.out ?? `${ROOT}bench/results`
const latencyBudgetMs = Number(values['latency-budget-ms'] ?? 1000)
if (!(minutes >= 1) || !(share > 0 && share <= 1) || (values.rate !== undefined && !(Number(values.rate) > 0)) || !(latencyBudgetMs > 0)) {
  console.error('soak: --minutes must be ≥ 1, --share in (0, 1], --rate > 0 (events/s), --latency-budget-ms > 0')
  process.exit(2)
}

const SAMPLE_MS = 15_000
const STALL_MS = 60_000
const PROBE_MS = 1_000
const LOAD_REASON = 'soak load'
const PROBE_REASON = 'soak probe'
const say = (m: string) => console.error(`[soak ${new Date().toISOString().slice(11, 19)}] ${m}`)

/** The rate to hold: --rate, else a share of the sustained end-to-end rate the last benchmark run measured. */
function targetRate(): { rate: number; basis: string } {
  if (values.rate !== undefined) return { rate: Number(values.rate), basis: `--rate ${values.rate}` }
  try {
    const bench = JSON.parse(readFileSync(`${ROOT}bench/results/latest.json`, 'utf8')) as { at: string; results: { name: string; ours: { perSecond: number } }[] }
    const sustained = bench.results.find((r) => r.name === 'e2e/sustained')?.ours.perSecond
    if (sustained) return { rate: sustained * share, basis: `${share} × e2e/sustained ${sustained.toFixed(0)}/s (bench run ${bench.at})` }
  } catch {}
  return { rate: 300 * share, basis: `${share} × 300/s (no benchmark result to read)` }
}

// --- the run ----------------------------------------------------------------------------------------------------------
const { rate, basis } = targetRate()
const pipeline = await createPipeline('soak', { CDC_LOG_LEVEL: 'warn' })
const { config } = pipeline
pipeline.start('all')
const db: Db = connect({ url: config.postgres.url, max: 8 })
const store = healingStore(() => connectMongo({ url: config.mongo.url, database: config.mongo.database, maxTimeMs: VERIFY_TIMEOUT_MS }), {
  operationTimeoutMs: VERIFY_TIMEOUT_MS + 10_000,
})
await waitFor(async () => (await fetch(`${pipeline.api}/readyz`).catch(() => null))?.ok ?? false, 60_000, 'cdc all ready')
say(`holding ${rate.toFixed(0)} events/s (${basis}) for ${minutes} min; logs in ${pipeline.logDir}`)

const procs: Proc[] = [...pipelineProcesses(pipeline, 'all'), { name: 'soak driver', pid: () => process.pid }]

// Seed rows the load updates, so it is not all inserts.
const api = async (method: string, path: string, body: unknown) => {
  const r = await fetch(`${pipeline.api}${path}`, {
    method,
    headers: { 'content-type': 'application/json', 'x-actor': 'soak-api', 'x-reason': LOAD_REASON },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  })
  if (!r.ok) throw new Error(`${method} ${path} → ${r.status}`)
  return (await r.json()) as Record<string, unknown>
}
const customers: number[] = []
const products: number[] = []
const orders: number[] = []
for (let i = 0; i < 20; i++) customers.push(Number((await api('POST', '/customers', { name: `Seed ${i}`, email: `seed${i}-${pipeline.tag}@soak.test`, address: `${i} Seed St` })).id))
for (let i = 0; i < 10; i++) products.push(Number((await api('POST', '/products', { category: 'soak', name: `Item ${i}`, price: 10 + i })).id))
const [probe] = await db.begin(async (tx) => {
  await tx.query("select set_config('cdc.actor', 'soak-probe', true), set_config('cdc.reason', $1, true)", [PROBE_REASON])
  return tx.query<{ id: number }>("insert into customers (name, email, address) values ('Probe', $1, 'Probe Rd') returning id", [`probe-${pipeline.tag}@soak.test`])
})

// One event per operation in the mix below except order placement (order + lines); the pacer adjusts from what the
// event store says it got, so the rate held is the event rate asked for.
const pick = <T>(xs: T[]) => xs[Math.floor(Math.random() * xs.length)]!
const ops: (() => Promise<unknown>)[] = [
  () => api('POST', '/customers', { name: 'Soak', email: `s${Bun.nanoseconds()}-${pipeline.tag}@soak.test`, address: '1 Soak St' }).then((c) => customers.push(Number(c.id))),
  () => api('PATCH', `/customers/${pick(customers)}`, { phone: `+1 555 ${Math.floor(Math.random() * 1e4)}` }),
  () => api('POST', '/orders', { customerId: pick(customers), shippingAddress: '2 Soak St', lines: [{ productId: pick(products), quantity: 1 }] }).then((o) => orders.push(Number(o.id))),
  () =>
    db.begin(async (tx) => {
      await tx.query("select set_config('cdc.actor', 'soak-sql', true), set_config('cdc.reason', $1, true)", [LOAD_REASON])
      await tx.query('update products set price = price + 0.01 where id = $1', [pick(products)])
    }),
  () =>
    db.begin(async (tx) => {
      await tx.query("select set_config('cdc.actor', 'soak-sql', true), set_config('cdc.reason', $1, true)", [LOAD_REASON])
      await tx.query('update customers set address = $1 where id = $2', [`${Math.floor(Math.random() * 1e4)} Batch Rd`, pick(customers)])
    }),
]

const eventsWritten = async () => Number((await db.query<{ n: string }>('select count(*) as n from cdc.event_store'))[0]!.n)
const startEvents = await eventsWritten()
let stopLoad = false
let opsIssued = 0
let opsFailed = 0
let eventsPerOp = 1.1
const writeLatencies: number[] = []
const loadStart = Date.now()

async function loadLoop() {
  while (!stopLoad) {
    // Shared schedule: the k-th operation is due at k / (rate / eventsPerOp) seconds; a late loop catches up.
    const due = loadStart + (opsIssued++ / (rate / eventsPerOp)) * 1000
    const wait = due - Date.now()
    if (wait > 0) await Bun.sleep(wait)
    if (stopLoad) break
    const t = performance.now()
    try {
      await pick(ops)()
      writeLatencies.push(performance.now() - t)
    } catch {
      opsFailed++
      await Bun.sleep(100)
    }
  }
}

async function probeLoop() {
  for (let i = 0; !stopLoad; i++) {
    await db
      .begin(async (tx) => {
        await tx.query("select set_config('cdc.actor', 'soak-probe', true), set_config('cdc.reason', $1, true)", [PROBE_REASON])
        await tx.query('update customers set phone = $1 where id = $2', [`probe ${i}`, probe!.id])
      })
      .catch(() => {})
    await Bun.sleep(PROBE_MS)
  }
}

interface Sample {
  /** Seconds since the load started. */
  t: number
  written: number
  published: number
  stored: number
  storedPerSecond: number
  writtenPerSecond: number
  /** Events committed in PostgreSQL and not yet in the history. */
  backlog: number
  relayBacklog: number
  relayLagSeconds: number
  consumerLag: number
  writeP50Ms: number
  writeP99Ms: number
  processes: { name: string; rssMiB: number; cpuPercent: number }[]
}

async function metrics(): Promise<Record<string, number>> {
  const text = await (await fetch(`${pipeline.api}/metrics`, { signal: AbortSignal.timeout(5000) })).text()
  const out: Record<string, number> = {}
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const name = line.slice(0, line.search(/[{ ]/))
    out[name] = (out[name] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return out
}

const samples: Sample[] = []
let lastCpu = new Map(procs.map((p) => [p.name, usage(p.pid(), p.children).cpuSeconds]))
let lastAt = Date.now()
let stalledSince: number | undefined
let stall: string | undefined

async function sample(): Promise<Sample> {
  const now = Date.now()
  const prevAt = lastAt
  const [written, m] = await Promise.all([eventsWritten(), metrics().catch(() => ({}) as Record<string, number>)])
  const prev = samples.at(-1)
  const dt = (now - lastAt) / 1000
  const processes = procs.map((p) => {
    const u = usage(p.pid(), p.children)
    const cpu = ((u.cpuSeconds - (lastCpu.get(p.name) ?? u.cpuSeconds)) / dt) * 100
    lastCpu.set(p.name, u.cpuSeconds)
    return { name: p.name, rssMiB: Math.round(u.rss / 2 ** 20), cpuPercent: Math.round(cpu) }
  })
  lastAt = now
  const lat = writeLatencies.splice(0).sort((a, b) => a - b)
  const stored = m.cdc_consume_events_stored_total ?? prev?.stored ?? 0
  const s: Sample = {
    t: Math.round((now - loadStart) / 1000),
    written: written - startEvents,
    published: m.cdc_relay_published_total ?? 0,
    stored,
    storedPerSecond: prev ? Math.round((stored - prev.stored) / dt) : 0,
    writtenPerSecond: prev ? Math.round((written - startEvents - prev.written) / dt) : 0,
    backlog: Math.max(0, written - startEvents - stored),
    relayBacklog: m.cdc_relay_backlog_events ?? 0,
    relayLagSeconds: m.cdc_relay_lag_seconds ?? 0,
    consumerLag: m.cdc_consume_lag ?? 0,
    writeP50Ms: Math.round(percentile(lat, 50)),
    writeP99Ms: Math.round(percentile(lat, 99)),
    processes,
  }
  // The pacer's events-per-operation, from what the event store got.
  if (opsIssued > 100) eventsPerOp = Math.min(3, Math.max(0.5, s.written / opsIssued))
  if (prev && s.stored === prev.stored && s.backlog > 0) stalledSince ??= prevAt
  else stalledSince = undefined
  if (stalledSince && now - stalledSince >= STALL_MS && !stall) stall = `no events stored for ${Math.round((now - stalledSince) / 1000)} s at t=${s.t}s with backlog ${s.backlog}`
  return s
}

// Enough writers that the rate, not their round trips (~50–150 ms each here), sets the pace.
const loops = [...Array.from({ length: Math.min(64, Math.max(8, Math.ceil(rate / 5))) }, loadLoop), probeLoop()]
const loadMs = minutes * 60_000
while (Date.now() - loadStart < loadMs && !stall) {
  await Bun.sleep(Math.min(SAMPLE_MS, loadStart + loadMs - Date.now()))
  const s = await sample()
  samples.push(s)
  say(
    `t=${s.t}s written ${s.writtenPerSecond}/s stored ${s.storedPerSecond}/s backlog ${s.backlog} (relay ${s.relayBacklog}, lag ${s.relayLagSeconds.toFixed(2)} s; consumer lag ${s.consumerLag}) ` +
      `write p99 ${s.writeP99Ms} ms; ${s.processes.map((p) => `${p.name} ${p.rssMiB} MiB ${p.cpuPercent}%`).join(', ')}`,
  )
}
stopLoad = true
await Promise.all(loops)
const loadSeconds = (Date.now() - loadStart) / 1000
say(`load stopped after ${loadSeconds.toFixed(0)} s${stall ? ` (${stall})` : ''}; draining`)

// --- drain, verify, judge -------------------------------------------------------------------------------------------
const drainStart = Date.now()
const drained = await waitFor(async () => (await sample().then((s) => s.backlog === 0)), 180_000, 'drain', 1000).then(
  () => true,
  () => false,
)
const drainSeconds = (Date.now() - drainStart) / 1000
const probes = await store.collection('customers_history').find({ reason: PROBE_REASON }, { projection: { occurredAt: 1, storedAt: 1 } })
const probeLatency = probes
  .map((d) => ({ at: Date.parse(String(d.occurredAt)), ms: Date.parse(String(d.storedAt)) - Date.parse(String(d.occurredAt)) }))
  .filter((p) => Number.isFinite(p.ms))
const kafka = createKafka({ brokers: config.kafka.brokers, clientId: `${pipeline.tag}-verify` })
const verdict: Verdict = await verifyPipeline({ config, db, store, kafka, groupId: `${pipeline.tag}-verify` })
await pipeline.stopAll()
await kafka.close()
await store.close()
await db.end()

const warmupS = Math.max(60, loadSeconds * 0.2)
const steady = samples.filter((s) => s.t >= warmupS && s.t <= loadSeconds)
const latencies = probeLatency.map((p) => p.ms).sort((a, b) => a - b)
/** Least-squares slope of y over t (per second). */
const slope = (pts: { t: number; y: number }[]) => {
  const n = pts.length
  if (n < 3) return Number.NaN
  const mt = pts.reduce((a, p) => a + p.t, 0) / n
  const my = pts.reduce((a, p) => a + p.y, 0) / n
  const den = pts.reduce((a, p) => a + (p.t - mt) ** 2, 0)
  return den === 0 ? 0 : pts.reduce((a, p) => a + (p.t - mt) * (p.y - my), 0) / den
}
const rssOf = (s: Sample) => s.processes.find((p) => p.name === 'cdc all')!.rssMiB
const rssPts = steady.map((s) => ({ t: s.t, y: rssOf(s) }))
const rssMean = rssPts.reduce((a, p) => a + p.y, 0) / Math.max(1, rssPts.length)
const rssGrowthPer10Min = (slope(rssPts) * 600) / rssMean
// Judged only over at least 4 minutes after warm-up: shorter windows see GC sawteeth, not a trend.
const rssJudged = steady.length > 0 && steady.at(-1)!.t - steady[0]!.t >= 240
const maxLateBacklog = Math.max(0, ...samples.filter((s) => s.t >= loadSeconds / 2).map((s) => s.backlog))
const backlogBound = Math.max(1000, rate * 30)
const written = samples.at(-1)?.written ?? 0
const criteria = [
  { name: 'progress: no 60 s without stored events while behind', ok: !stall, value: stall ?? 'always progressing' },
  { name: `backlog bounded (second half ≤ ${backlogBound.toFixed(0)} events = 30 s of load)`, ok: maxLateBacklog <= backlogBound, value: `max ${maxLateBacklog}` },
  {
    name: 'RSS of cdc growing ≤ 10% per 10 min after warm-up',
    ok: !rssJudged || rssGrowthPer10Min <= 0.1,
    value: rssJudged ? `${(rssGrowthPer10Min * 100).toFixed(1)}% per 10 min (mean ${rssMean.toFixed(0)} MiB)` : 'not judged: under 4 min after warm-up',
  },
  { name: `p99 commit→history ≤ ${latencyBudgetMs} ms (probe events)`, ok: latencies.length > 0 && percentile(latencies, 99) <= latencyBudgetMs, value: `p99 ${percentile(latencies, 99)} ms over ${latencies.length} probes` },
  { name: 'drained after the load', ok: drained, value: `${drainSeconds.toFixed(0)} s` },
  { name: 'nothing lost or duplicated, gapless, read model = rows, DLQ empty', ok: verdict.ok, value: verdict.problems.slice(0, 3).join('; ') || 'complete' },
]
const ok = criteria.every((c) => c.ok)

const report = {
  at: new Date().toISOString(),
  ok,
  minutes,
  rate: { target: rate, basis, achieved: written / loadSeconds, opsIssued, opsFailed },
  latency: { probeP50Ms: percentile(latencies, 50), probeP95Ms: percentile(latencies, 95), probeP99Ms: percentile(latencies, 99), probes: latencies.length },
  rssGrowthPer10Min: rssJudged ? rssGrowthPer10Min : null,
  criteria,
  verdict,
  samples,
  probeLatency,
}
const md = renderMarkdown()
await Bun.write(`${outDir}/soak-latest.json`, `${JSON.stringify(report, null, 2)}\n`)
await Bun.write(`${outDir}/soak-latest.md`, md)
await Bun.write(`${outDir}/soak-latest.svg`, renderChart())
console.log(md)
if (ok) await pipeline.dropDatabase()
process.exit(ok ? 0 : 1)

function renderMarkdown(): string {
  const f = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '–')
  return [
    `Soak run ${report.at}: ${minutes} min at ${f(rate)} events/s asked (${basis}), ${f(report.rate.achieved)} events/s written; ` +
      `${opsIssued} operations (${opsFailed} failed), roles in one \`cdc all\` process, every server on this machine.`,
    '',
    '| criterion | result | value |',
    '| --- | --- | --- |',
    ...criteria.map((c) => `| ${c.name} | ${c.ok ? 'ok' : 'FAILED'} | ${c.value} |`),
    '',
    '| figure | value |',
    '| --- | --- |',
    ...verdictRows(verdict),
    `| commit→history of probes p50 / p95 / p99 | ${f(report.latency.probeP50Ms)} / ${f(report.latency.probeP95Ms)} / ${f(report.latency.probeP99Ms)} ms |`,
    '',
    '| t (s) | written/s | stored/s | backlog | relay lag (s) | consumer lag | write p50 / p99 (ms) | RSS MiB / CPU % per process |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...samples.map(
      (s) =>
        `| ${s.t} | ${s.writtenPerSecond} | ${s.storedPerSecond} | ${s.backlog} | ${s.relayLagSeconds.toFixed(2)} | ${s.consumerLag} | ${f(s.writeP50Ms)} / ${f(s.writeP99Ms)} | ` +
        `${s.processes.map((p) => `${p.name} ${p.rssMiB}/${p.cpuPercent}`).join(', ')} |`,
    ),
    '',
    ok ? 'RESULT: soak passed' : 'RESULT: soak FAILED',
    '',
  ].join('\n')
}

/** Four panels over time: lag (backlog and consumer lag), stored/s, RSS of cdc, probe commit→history p99 per window. */
function renderChart(): string {
  const W = 420
  const H = 150
  const pad = 40
  const tMax = Math.max(1, ...samples.map((s) => s.t))
  const windows = samples.map((s, i) => {
    const from = loadStart + (i === 0 ? 0 : samples[i - 1]!.t * 1000)
    const to = loadStart + s.t * 1000
    const inWindow = probeLatency.filter((p) => p.at >= from && p.at < to).map((p) => p.ms).sort((a, b) => a - b)
    return { t: s.t, y: inWindow.length ? percentile(inWindow, 99) : 0 }
  })
  const panels: { title: string; pts: { t: number; y: number }[]; color: string; second?: { t: number; y: number }[] }[] = [
    {
      title: 'lag: backlog (red, committed not stored), consumer lag (grey)',
      pts: samples.map((s) => ({ t: s.t, y: s.backlog })),
      color: '#c0392b',
      second: samples.map((s) => ({ t: s.t, y: s.consumerLag })),
    },
    { title: 'events stored per second', pts: samples.map((s) => ({ t: s.t, y: s.storedPerSecond })), color: '#1f5f99' },
    { title: 'RSS of cdc all (MiB)', pts: samples.map((s) => ({ t: s.t, y: rssOf(s) })), color: '#2e8b57' },
    { title: 'commit→history p99 per window (ms)', pts: windows, color: '#e0a800' },
  ]
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${2 * (W + pad) + pad}" height="${2 * (H + 2 * pad)}" font-family="sans-serif" font-size="11">`, '<rect width="100%" height="100%" fill="white"/>']
  panels.forEach((p, i) => {
    const x0 = pad + (i % 2) * (W + pad)
    const y0 = pad + Math.floor(i / 2) * (H + 2 * pad)
    const yMax = Math.max(1, ...p.pts.map((q) => q.y), ...(p.second ?? []).map((q) => q.y))
    const line = (pts: { t: number; y: number }[]) =>
      pts.map((q, j) => `${j ? 'L' : 'M'}${(x0 + (q.t / tMax) * W).toFixed(1)},${(y0 + H - (q.y / yMax) * H).toFixed(1)}`).join(' ')
    const path = line(p.pts)
    if (p.second) parts.push(`<path d="${line(p.second)}" fill="none" stroke="#888" stroke-width="1" stroke-dasharray="3,2"/>`)
    parts.push(
      `<text x="${x0}" y="${y0 - 8}" font-weight="bold">${p.title}</text>`,
      `<rect x="${x0}" y="${y0}" width="${W}" height="${H}" fill="none" stroke="#ccc"/>`,
      `<text x="${x0 - 4}" y="${y0 + 10}" text-anchor="end">${yMax.toFixed(0)}</text>`,
      `<text x="${x0 - 4}" y="${y0 + H}" text-anchor="end">0</text>`,
      `<text x="${x0 + W}" y="${y0 + H + 14}" text-anchor="end">${tMax} s</text>`,
      `<path d="${path}" fill="none" stroke="${p.color}" stroke-width="1.5"/>`,
    )
  })
  parts.push('</svg>')
  return `${parts.join('\n')}\n`
}
