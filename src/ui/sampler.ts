// The pipeline figures of the last minutes, kept in memory by the serve process: every few seconds one sample of the
// same series /metrics shows (read from the process-wide registry, so roles running in this process are seen) plus
// the open version gaps from MongoDB. A ring buffer: old samples fall off, memory stays constant.
import { renderMetrics } from '../metrics.ts'
import { GAPS_COLLECTION } from '../consume/gaps.ts'
import type { Store } from '../clients/mongo.ts'

export const SAMPLE_EVERY_MS = 5_000
export const CAPACITY = 120

/** Each chart: a Prometheus series summed over its labels, or a rate of a counter. */
export const SERIES = [
  { key: 'relayBacklog', title: 'Relay backlog', unit: 'events', metric: 'cdc_relay_backlog_events', rate: false },
  { key: 'relayLag', title: 'Relay lag', unit: 's', metric: 'cdc_relay_lag_seconds', rate: false },
  { key: 'published', title: 'Published', unit: 'events/s', metric: 'cdc_relay_published_total', rate: true },
  { key: 'consumerLag', title: 'Consumer lag', unit: 'messages', metric: 'cdc_consume_lag', rate: false },
  { key: 'stored', title: 'Stored', unit: 'events/s', metric: 'cdc_consume_events_stored_total', rate: true },
  { key: 'dlqDepth', title: 'DLQ depth', unit: 'messages', metric: 'cdc_consume_dlq_depth', rate: false },
  { key: 'gaps', title: 'Open gaps', unit: 'aggregates', metric: null, rate: false },
] as const

export type SeriesKey = (typeof SERIES)[number]['key']

export interface Sample {
  at: number
  /** null: the series is not exported in this process (its role runs elsewhere) or its source is unreachable. */
  values: Record<SeriesKey, number | null>
}

/** Sums each metric family over its label sets, from the Prometheus text exposition. */
export function parseMetrics(text: string): Map<string, number> {
  const sums = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{.*\})? (\S+)$/.exec(line)
    if (!m) continue
    const value = Number(m[2])
    if (Number.isFinite(value)) sums.set(m[1]!, (sums.get(m[1]!) ?? 0) + value)
  }
  return sums
}

export class Sampler {
  private readonly samples: Sample[] = []
  private readonly totals = new Map<string, number>()
  private timer: Timer | undefined
  private lastAt = 0

  constructor(private readonly store: () => Promise<Store>) {}

  /** Starts on the first console request, so processes that never show the console never sample. */
  ensureStarted() {
    if (this.timer) return
    void this.sample()
    this.timer = setInterval(() => void this.sample(), SAMPLE_EVERY_MS)
    this.timer.unref?.()
  }

  list(): readonly Sample[] {
    return this.samples
  }

  async sample() {
    const at = Date.now()
    const sums = parseMetrics(renderMetrics())
    const seconds = this.lastAt ? (at - this.lastAt) / 1000 : 0
    const values = {} as Sample['values']
    for (const s of SERIES) {
      if (s.metric === null) continue
      const value = sums.get(s.metric)
      if (value === undefined) values[s.key] = null
      else if (!s.rate) values[s.key] = value
      else {
        const previous = this.totals.get(s.metric)
        this.totals.set(s.metric, value)
        values[s.key] = previous === undefined || seconds <= 0 ? null : Math.max(0, (value - previous) / seconds)
      }
    }
    values.gaps = await this.gaps()
    this.lastAt = at
    this.samples.push({ at, values })
    if (this.samples.length > CAPACITY) this.samples.shift()
  }

  private async gaps(): Promise<number | null> {
    try {
      return await (await this.store()).collection(GAPS_COLLECTION).count({})
    } catch {
      return null
    }
  }
}
