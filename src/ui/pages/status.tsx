/** @jsxImportSource hono/jsx */
// Pipeline status: the figures of /metrics over the last minutes as sparklines, refreshed by the script every few
// seconds (a plain reload shows the same without it).
import { Sparkline } from '../chart.tsx'
import { SAMPLE_EVERY_MS, SERIES, type Sample } from '../sampler.ts'

const format = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1))

export function StatusPage({ samples }: { samples: readonly Sample[] }) {
  const last = samples.at(-1)
  const minutes = Math.max(1, Math.round((samples.length * SAMPLE_EVERY_MS) / 60_000))
  return (
    <>
      <h1>Pipeline</h1>
      <p class="muted" data-refresh={String(SAMPLE_EVERY_MS)}>
        The last {minutes} minute(s), one sample every {SAMPLE_EVERY_MS / 1000} s, from this process's /metrics. A dash
        means the series is not exported here (its role runs in another process).
      </p>
      <div class="grid" id="metrics">
        {SERIES.map((s) => {
          const values = samples.map((x) => x.values[s.key])
          const now = last?.values[s.key] ?? null
          return (
            <section class="card metric" data-series={s.key}>
              <h3>{s.title}</h3>
              <div>
                <span class="now">{now === null ? '—' : format(now)}</span> <small>{s.unit}</small>
              </div>
              <Sparkline values={values} label={`${s.title} over the last ${minutes} minute(s)`} />
            </section>
          )
        })}
      </div>
    </>
  )
}
