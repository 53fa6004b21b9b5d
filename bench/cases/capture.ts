// Capture overhead, measured so that a shared, noisy 2-core machine still gives a trustworthy ratio:
// - throughput: the same write workload (WRITERS connections; each transaction sets cdc.actor / reason /
//   correlation_id / causation_id / source, inserts 2 rows, updates 2, deletes 1) on an untracked table and on the
//   same table tracked in outbox, emit or logical mode (logical: with `cdc relay` running as its own process on this
//   machine, as it is deployed, decoding and publishing the changes while they are written; each logical segment is
//   timed until the relay has applied all of its writes, so the rate is one the relay keeps up with; in the bench's
//   own process its JavaScript would delay the writers' client, a cost no deployment has). Each round
//   is a pair of short back-to-back segments, untracked and tracked, in alternating order (AB BA AB …), so drift
//   (checkpoints, autovacuum, other engineers' jobs) hits both sides of a pair alike; the result is the median of the
//   per-pair ratios, with their spread, and for logical mode the CPU each process spent per row write.
// - trigger cost: µs per row of multi-row statements in one transaction on one connection, tracked minus untracked
//   (and an empty trigger for reference), the figure that guides work on the trigger itself.
// fsync and synchronous_commit stay on: these are honest commit-bound numbers.
import { median, sum, type BenchCase, type CaseResult } from '../types.ts'
import { createTestEnv } from '../../test/support/env.ts'
import { migrate } from '../../src/capture/migrate.ts'
import { captureSpec } from '../../src/capture/spec.ts'
import type { Db } from '../../src/clients/postgres.ts'
import type { Config } from '../../src/config.ts'
import { ROOT } from '../../test/support/env.ts'
import { CpuMeter } from '../proc.ts'
import { serverProcesses, testEnvSettings, type Proc } from '../pipeline.ts'

const WRITERS = 4
const TABLES = { raw: 'bench_plain', outbox: 'bench_outbox', emit: 'bench_emit', logical: 'bench_logical', empty: 'bench_empty' } as const
type Table = keyof typeof TABLES
type Tracked = 'outbox' | 'emit' | 'logical'
const TRACKED: Tracked[] = ['outbox', 'emit', 'logical']

const CREATE = (table: string) => `create table public.${table} (
  id bigint generated always as identity primary key,
  name text not null, email text not null, address text, quantity int not null, price numeric(12,2) not null,
  updated_at timestamptz not null default now())`

export const capture: BenchCase = async ({ scale, log }) => {
  const env = await createTestEnv((c) => {
    c.postgres.maxConnections = WRITERS + 2
    // logical mode for the relay started below; the other bench tables are tracked with their own mode
    c.capture.mode = 'logical'
    c.capture.tracked = []
    c.capture.roots = {}
  })
  let relay: Bun.Subprocess | undefined
  try {
    await migrate(env.rt)
    const db = env.rt.db()
    const preload = Math.max(1000, Math.min(10_000, Math.round(2000 * scale)))
    const pairs = Math.max(4, Math.round(16 * scale))
    const txPerSegment = Math.max(40, Math.round(600 * scale))
    const live = {} as Record<Table, LiveIds>
    for (const [name, table] of Object.entries(TABLES) as [Table, string][]) {
      await db.query(CREATE(table))
      await db.query(
        `insert into public.${table} (name, email, address, quantity, price)
         select 'name ' || g, 'user' || g || '@example.com', g || ' Main Street', g % 10 + 1, (g % 100) + 0.99 from generate_series(1, $1) g`,
        [preload],
      )
      if (name === 'outbox' || name === 'emit' || name === 'logical') {
        const spec = { ...captureSpec(env.config, { schema: 'public', name: table }), mode: name }
        await db.query(`select cdc.track('public', $1, $2::text::jsonb)`, [table, JSON.stringify(spec)])
      }
      live[name] = new LiveIds(preload)
    }
    await db.query(`create function public.bench_noop() returns trigger language plpgsql as $$ begin return null; end $$`)
    await db.query(`create trigger noop after insert or update or delete on public.${TABLES.empty} for each row execute function public.bench_noop()`)
    await db.query('vacuum analyze')
    relay = spawnRelay(env.config)

    const micro = await triggerCost(db, Math.max(500, Math.round(2000 * scale)), log)
    // The trigger-cost rounds left the logical relay a backlog of large transactions: its apply rate, and a relay that
    // is caught up before the paired rounds start (so they measure writes with the relay streaming, not draining).
    const before = await eventCount(db, TABLES.logical)
    const drainSeconds = await relayCaughtUp(db, env.config.relay.slot, 600_000)
    const drained = (await eventCount(db, TABLES.logical)) - before
    const applyRate = drained / drainSeconds
    log(`logical relay applied ${drained} events of the trigger-cost rounds' large transactions in ${drainSeconds.toFixed(1)} s (${applyRate.toFixed(0)}/s)`)

    log(`preloaded ${preload} rows per table; ${pairs} pairs per mode × ${txPerSegment} transactions × 5 row writes, ${WRITERS} writers`)
    const ratios: Record<Tracked, number[]> = { outbox: [], emit: [], logical: [] }
    const rates: Record<Table, number[]> = { raw: [], outbox: [], emit: [], logical: [], empty: [] }
    // CPU per process during the logical pairs' segments, per side, and the row writes they made
    const procs: Proc[] = [
      { name: 'writers (bench process)', pid: () => process.pid },
      { name: 'relay', pid: () => relay!.pid },
      ...serverProcesses().filter((p) => p.name !== 'ferretdb'),
    ]
    const cpu = { raw: new CpuMeter(procs), logical: new CpuMeter(procs) }
    const cpuRows = { raw: 0, logical: 0 }
    for (let pair = 0; pair < pairs; pair++) {
      for (const mode of TRACKED) {
        const order: Table[] = pair % 2 === 0 ? ['raw', mode] : [mode, 'raw']
        const got = {} as Record<Table, number>
        for (const side of order) {
          const metered = mode === 'logical' ? (side === 'raw' ? 'raw' : 'logical') : undefined
          // A logical segment ends when the relay has applied every change it wrote: the writers' rate counts the
          // relay keeping up, and no backlog spills into the next segment's time or CPU.
          const segment = () => workload(db, TABLES[side], live[side], txPerSegment)
          const run = side === 'logical' ? () => appliedToo(db, segment) : segment
          const m = metered ? await cpu[metered].measure(run) : await run()
          if (metered) cpuRows[metered] += m.rows
          got[side] = m.rows / m.seconds
          rates[side].push(got[side])
        }
        ratios[mode].push(got[mode]! / got.raw!)
        log(`pair ${pair + 1} ${mode}: raw ${got.raw!.toFixed(0)} rows/s, ${mode} ${got[mode]!.toFixed(0)} rows/s, ratio ${(got[mode]! / got.raw!).toFixed(2)}`)
      }
    }
    const caughtUp = await relayCaughtUp(db, env.config.relay.slot)
    log(`logical relay caught up ${caughtUp.toFixed(1)} s after the last write`)
    const [events] = await db.query<{ n: number }>(`select count(*)::int as n from cdc.event_store where aggregate_type like 'bench_%'`)
    const rowsPerSegment = txPerSegment * 5
    const result = (mode: Tracked, target: number): CaseResult => {
      const sorted = [...ratios[mode]].sort((a, b) => a - b)
      const ratio = median(sorted)
      const q1 = sorted[Math.floor((sorted.length - 1) / 4)]!
      const q3 = sorted[Math.ceil(((sorted.length - 1) * 3) / 4)]!
      const c = micro[mode]
      return {
        name: `capture/${mode}`,
        stage: 'capture',
        unit: 'row write',
        ours: { perSecond: median(rates[mode]), count: rowsPerSegment * rates[mode].length, seconds: sum(rates[mode].map((r) => rowsPerSegment / r)) },
        raw: { perSecond: median(rates.raw), count: rowsPerSegment * rates.raw.length, seconds: sum(rates.raw.map((r) => rowsPerSegment / r)) },
        ratio,
        target: { ratio: target },
        notes:
          `median of ${sorted.length} paired rounds (AB/BA), spread ${sorted[0]!.toFixed(2)}–${sorted.at(-1)!.toFixed(2)}, IQR ${q1.toFixed(2)}–${q3.toFixed(2)}; ` +
          `trigger µs/row (1 connection, best of 7, tracked − untracked): insert ${c.insert.toFixed(0)}, update ${c.update.toFixed(0)}, delete ${c.delete.toFixed(0)} ` +
          `(empty trigger: ${micro.empty.insert.toFixed(0)}/${micro.empty.update.toFixed(0)}/${micro.empty.delete.toFixed(0)}); ` +
          `${WRITERS} writers, tx = 2 inserts + 2 updates + 1 delete with actor, reason, correlation and causation ids set; ${events!.n} events captured` +
          (mode === 'logical'
            ? `; relay streaming as its own process, each segment timed until it had applied the segment's writes; published all ${caughtUp.toFixed(1)} s after the last write; ` +
              `it applied the trigger-cost rounds' large transactions at ${applyRate.toFixed(0)} events/s (${drained} events, before the paired rounds); ` +
              `CPU µs per row write — logical segments: ${cpu.logical.perUnit(cpuRows.logical)}; their untracked segments: ${cpu.raw.perUnit(cpuRows.raw)}`
            : ''),
      }
    }
    return [result('outbox', 0.75), result('emit', 0.85), result('logical', 0.9)]
  } finally {
    relay?.kill('SIGTERM')
    await relay?.exited
    await env.cleanup()
  }
}

/** `cdc relay` for the bench's database, as its own process (logging errors only, to the bench's stderr). */
function spawnRelay(config: Config): Bun.Subprocess {
  return Bun.spawn(['bun', 'run', `${ROOT}src/cli.ts`, 'relay'], {
    cwd: ROOT,
    env: {
      ...process.env,
      ...testEnvSettings(config),
      CDC_DEMO_ENABLED: 'false',
      CDC_CAPTURE_MODE: 'logical',
      CDC_OPS_PORT: '0',
      CDC_LOG_LEVEL: 'error',
    },
    stdout: 'ignore',
    stderr: 'inherit',
  })
}

/** Events captured from a bench table so far. */
async function eventCount(db: Db, table: string): Promise<number> {
  const [row] = await db.query<{ n: number }>('select count(*)::int as n from cdc.event_store where aggregate_type = $1', [table])
  return row!.n
}

/** Seconds until the logical relay's slot confirmed everything written so far (its events are in Kafka). */
async function relayCaughtUp(db: Db, slot: string, timeoutMs = 120_000): Promise<number> {
  const t0 = performance.now()
  const [now] = await db.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn')
  for (;;) {
    const [s] = await db.query<{ ok: boolean }>('select confirmed_flush_lsn >= $1::pg_lsn as ok from pg_replication_slots where slot_name = $2', [now!.lsn, slot])
    if (s?.ok) return (performance.now() - t0) / 1000
    if (performance.now() - t0 > timeoutMs) throw new Error(`the logical relay did not catch up within ${timeoutMs / 1000} s`)
    await Bun.sleep(100)
  }
}

/**
 * Runs a workload on the logical table and waits until the relay has applied all of its row writes (one event each)
 * to the event store; the seconds include that wait. Event ids start with their commit's millisecond (UUIDv7), so the
 * segment's events are a primary-key range.
 */
async function appliedToo(db: Db, work: () => Promise<{ rows: number; seconds: number }>) {
  const from = Date.now() - 1
  const t0 = performance.now()
  const m = await work()
  const lowest = `${from.toString(16).padStart(12, '0').replace(/^(.{8})/, '$1-')}-7000-8000-000000000000`
  for (const deadline = t0 + 120_000; ; await Bun.sleep(5)) {
    const [row] = await db.query<{ n: number }>(`select count(*)::int as n from cdc.event_store where id >= $1::uuid and aggregate_type = $2`, [lowest, TABLES.logical])
    if (row!.n >= m.rows) break
    if (performance.now() > deadline) throw new Error(`the logical relay applied ${row!.n} of ${m.rows} row writes within 120 s`)
  }
  return { rows: m.rows, seconds: (performance.now() - t0) / 1000 }
}

/** Ids of the rows a table still has, kept across segments so updates and deletes always hit a row. */
class LiveIds {
  private ids: number[]
  private turn = 0
  constructor(preload: number) {
    this.ids = Array.from({ length: preload }, (_, i) => i + 1)
  }
  /** A live id, spread over the table (writers of one segment never pick the same one: no lock waits). */
  pick(): number {
    this.turn++
    return this.ids[(this.turn * 7919) % this.ids.length]!
  }
  take(): number {
    this.turn++
    return this.ids.splice((this.turn * 104_729) % this.ids.length, 1)[0]!
  }
  add(ids: number[]) {
    this.ids.push(...ids)
  }
}

/** WRITERS connections running `transactions` transactions in total on `table`. */
async function workload(db: Db, table: string, live: LiveIds, transactions: number) {
  let rows = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      for (let i = w; i < transactions; i += WRITERS) {
        // ids picked up front, so no two writers touch one row at a time
        const a = live.pick()
        const b = live.pick()
        const victim = live.take()
        const inserted = await db.begin(async (tx) => {
          await tx.query(
            `select set_config('cdc.actor', $1, true), set_config('cdc.reason', 'bench', true),
                    set_config('cdc.correlation_id', $2, true), set_config('cdc.causation_id', $3, true),
                    set_config('cdc.source', 'api', true)`,
            [`writer-${w}`, `req-${w}-${i}`, `cmd-${w}-${i}`],
          )
          const ids = await tx.query<{ id: number }>(
            `insert into public.${table} (name, email, address, quantity, price)
             values ($1, $2, $3, 1, 9.99), ($4, $5, $3, 2, 19.99) returning id`,
            [`new ${w}-${i}a`, `n${w}-${i}a@example.com`, `${i} New Street`, `new ${w}-${i}b`, `n${w}-${i}b@example.com`],
          )
          // (returning: a row another writer deleted meanwhile is no row write, and makes no event)
          const touched = [
            ...(await tx.query(`update public.${table} set quantity = quantity + 1, updated_at = now() where id = $1 returning id`, [a])),
            ...(await tx.query(`update public.${table} set address = $2, price = price + 1 where id = $1 returning id`, [b, `${i} Other Street`])),
            ...(await tx.query(`delete from public.${table} where id = $1 returning id`, [victim])),
          ]
          return { ids: ids.map((r) => Number(r.id)), writes: ids.length + touched.length }
        })
        live.add(inserted.ids)
        rows += inserted.writes
      }
    }),
  )
  return { rows, seconds: (performance.now() - t0) / 1000 }
}

type Cost = { insert: number; update: number; delete: number }

/**
 * Per-row trigger cost in µs: on one connection, in one transaction per table, a multi-row insert, update and delete
 * of `n` rows; tracked minus untracked, best of 7 rounds interleaved across the tables (the least disturbed by other load).
 */
async function triggerCost(db: Db, n: number, log: (m: string) => void): Promise<Record<Tracked | 'empty', Cost>> {
  const samples = {} as Record<Table, { insert: number[]; update: number[]; delete: number[] }>
  for (const t of Object.keys(TABLES) as Table[]) samples[t] = { insert: [], update: [], delete: [] }
  const timed = async (tx: Db, text: string, params: unknown[]) => {
    const t0 = performance.now()
    await tx.query(text, params)
    return ((performance.now() - t0) * 1000) / n
  }
  for (let round = 0; round < 7; round++) {
    for (const t of Object.keys(TABLES) as Table[]) {
      const table = TABLES[t]
      await db.begin(async (tx) => {
        await tx.query(
          `select set_config('cdc.actor', 'alice', true), set_config('cdc.reason', 'bench', true),
                  set_config('cdc.correlation_id', 'req-1', true), set_config('cdc.causation_id', 'cmd-1', true),
                  set_config('cdc.source', 'api', true)`,
        )
        const [first] = await tx.query<{ id: string }>(`select nextval(pg_get_serial_sequence($1, 'id')) + 1 as id`, [`public.${table}`])
        const lo = Number(first!.id)
        samples[t].insert.push(
          await timed(tx, `insert into public.${table} (name, email, address, quantity, price)
            select 'micro ' || g, 'micro' || g || '@example.com', g || ' Micro Street', 1, 9.99 from generate_series(1, $1) g`, [n]),
        )
        samples[t].update.push(
          await timed(tx, `update public.${table} set address = address || ' b', price = price + 1 where id between $1 and $2`, [lo, lo + n - 1]),
        )
        samples[t].delete.push(await timed(tx, `delete from public.${table} where id between $1 and $2`, [lo, lo + n - 1]))
      })
    }
  }
  const cost = (t: Table): Cost => ({
    insert: Math.min(...samples[t].insert) - Math.min(...samples.raw.insert),
    update: Math.min(...samples[t].update) - Math.min(...samples.raw.update),
    delete: Math.min(...samples[t].delete) - Math.min(...samples.raw.delete),
  })
  log(`trigger cost samples (µs/row): ${JSON.stringify(samples, (_k, v) => (typeof v === 'number' ? Math.round(v) : v))}`)
  const out = { outbox: cost('outbox'), emit: cost('emit'), logical: cost('logical'), empty: cost('empty') }
  for (const [k, c] of Object.entries(out)) {
    log(`trigger cost ${k}: insert ${c.insert.toFixed(1)} µs/row, update ${c.update.toFixed(1)}, delete ${c.delete.toFixed(1)}`)
  }
  return out
}
