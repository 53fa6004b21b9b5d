// Capture overhead: the same write workload (transactions of 2 inserts, 2 updates, 1 delete, with cdc.actor /
// reason / correlation id set, over a preloaded table) on an untracked table, on the same table tracked in outbox
// mode and in emit mode. Rounds interleave the three so drift (checkpoints, autovacuum) hits all alike.
// fsync and synchronous_commit stay on: these are honest commit-bound numbers.
import type { BenchCase, CaseResult, Measurement } from '../types.ts'
import { createTestEnv } from '../../test/support/env.ts'
import { migrate } from '../../src/capture/migrate.ts'
import { captureSpec } from '../../src/capture/spec.ts'
import type { Db } from '../../src/clients/postgres.ts'

const WRITERS = 4
const ROUNDS = 6
const TABLES = { raw: 'bench_plain', outbox: 'bench_outbox', emit: 'bench_emit' } as const
type Mode = keyof typeof TABLES

const CREATE = (table: string) => `create table public.${table} (
  id bigint generated always as identity primary key,
  name text not null, email text not null, address text, quantity int not null, price numeric(12,2) not null,
  updated_at timestamptz not null default now())`

export const capture: BenchCase = async ({ scale, log }) => {
  const env = await createTestEnv((c) => {
    c.postgres.maxConnections = WRITERS + 1
  })
  try {
    await migrate(env.rt)
    const db = env.rt.db()
    const preload = Math.max(1000, Math.min(10_000, Math.round(2000 * scale)))
    const txPerRound = Math.max(50, Math.round(150 * scale))
    for (const [mode, table] of Object.entries(TABLES)) {
      await db.query(CREATE(table))
      await db.query(
        `insert into public.${table} (name, email, address, quantity, price)
         select 'name ' || g, 'user' || g || '@example.com', g || ' Main Street', g % 10 + 1, (g % 100) + 0.99 from generate_series(1, $1) g`,
        [preload],
      )
      if (mode !== 'raw') {
        const spec = { ...captureSpec(env.config, table), mode }
        await db.query('select cdc.track($1, $2::text::jsonb)', [table, JSON.stringify(spec)])
      }
    }
    await db.query('vacuum analyze')
    log(`preloaded ${preload} rows per table; ${ROUNDS} rounds × ${txPerRound} transactions × 5 row writes, ${WRITERS} writers`)
    const totals: Record<Mode, { rows: number; seconds: number }> = { raw: { rows: 0, seconds: 0 }, outbox: { rows: 0, seconds: 0 }, emit: { rows: 0, seconds: 0 } }
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of Object.keys(TABLES) as Mode[]) {
        const m = await workload(db, TABLES[mode], txPerRound, preload)
        totals[mode].rows += m.rows
        totals[mode].seconds += m.seconds
        log(`round ${round + 1} ${mode}: ${(m.rows / m.seconds).toFixed(0)} rows/s`)
      }
    }
    const measure = (mode: Mode): Measurement => ({
      perSecond: totals[mode].rows / totals[mode].seconds,
      count: totals[mode].rows,
      seconds: totals[mode].seconds,
    })
    const raw = measure('raw')
    const [events] = await db.query<{ n: number }>(`select count(*)::int as n from cdc.event_store where aggregate_type like 'bench_%'`)
    const result = (mode: 'outbox' | 'emit', target: number): CaseResult => {
      const ours = measure(mode)
      return {
        name: `capture/${mode}`,
        stage: 'capture',
        unit: 'row write',
        ours,
        raw,
        ratio: ours.perSecond / raw.perSecond,
        target: { ratio: target },
        notes: `${WRITERS} writers, tx = 2 inserts + 2 updates + 1 delete with who/why set; untracked table as raw; ${events!.n} events captured`,
      }
    }
    return [result('outbox', 0.75), result('emit', 0.85)]
  } finally {
    await env.cleanup()
  }
}

/** WRITERS connections, each on its own ids (no lock waits between writers), `transactions` in total. */
async function workload(db: Db, table: string, transactions: number, preload: number) {
  let rows = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      const live: number[] = []
      for (let id = w + 1; id <= preload; id += WRITERS) live.push(id)
      let n = 0
      for (let i = w; i < transactions; i += WRITERS) {
        await db.begin(async (tx) => {
          await tx.query(
            `select set_config('cdc.actor', $1, true), set_config('cdc.reason', 'bench', true),
                    set_config('cdc.correlation_id', $2, true), set_config('cdc.source', 'api', true)`,
            [`writer-${w}`, `req-${w}-${i}`],
          )
          const inserted = await tx.query<{ id: number }>(
            `insert into public.${table} (name, email, address, quantity, price)
             values ($1, $2, $3, 1, 9.99), ($4, $5, $3, 2, 19.99) returning id`,
            [`new ${w}-${i}a`, `n${w}-${i}a@example.com`, `${i} New Street`, `new ${w}-${i}b`, `n${w}-${i}b@example.com`],
          )
          const a = live[(n * 7) % live.length]!
          const b = live[(n * 13 + 1) % live.length]!
          await tx.query(`update public.${table} set quantity = quantity + 1, updated_at = now() where id = $1`, [a])
          await tx.query(`update public.${table} set address = $2, price = price + 1 where id = $1`, [b, `${i} Other Street`])
          const victim = live.splice((n * 11 + 3) % live.length, 1)[0]!
          await tx.query(`delete from public.${table} where id = $1`, [victim])
          for (const r of inserted) live.push(r.id)
        })
        n++
        rows += 5
      }
    }),
  )
  return { rows, seconds: (performance.now() - t0) / 1000 }
}
