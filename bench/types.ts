// What every benchmark case returns: ours next to the raw library doing the same work, measured in the same run.
export interface Measurement {
  /** Operations (events, rows, requests) per second. */
  perSecond: number
  /** Latency percentiles in milliseconds, where the case measures latency. */
  p50Ms?: number
  p95Ms?: number
  p99Ms?: number
  count: number
  seconds: number
}

export interface CaseResult {
  /** e.g. "capture/outbox", "relay/poll", "consume/failures-only", "e2e/sustained", "http/write". */
  name: string
  /** The bench stage (`--only`) that measured it. */
  stage: 'capture' | 'relay' | 'consume' | 'scaleout' | 'e2e' | 'http' | 'reads'
  /** What one operation is, e.g. "row write", "event", "request". */
  unit: string
  ours: Measurement
  /** The raw library doing the same work (absent for cases without a baseline, e.g. end-to-end). */
  raw?: Measurement
  /** ours.perSecond / raw.perSecond. */
  ratio?: number
  /** The target ratio (or absolute figure) from the team guide, to show pass/fail. */
  target?: { ratio?: number; perSecond?: number; p99Ms?: number }
  notes?: string
}

export interface BenchOptions {
  /** Scale factor: 1 = the full run; CI or quick checks use less. */
  scale: number
  log: (message: string) => void
}

export type BenchCase = (options: BenchOptions) => Promise<CaseResult[]>

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!
}

/** A measurement of operations timed one by one: rate over `seconds` and latency percentiles (sorts `latencies`). */
export function latencyMeasurement(latencies: number[], seconds: number): Measurement {
  latencies.sort((a, b) => a - b)
  return {
    perSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 50),
    p95Ms: percentile(latencies, 95),
    p99Ms: percentile(latencies, 99),
    count: latencies.length,
    seconds,
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export function sum(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0)
}
