// A small Prometheus registry: counters, gauges and histograms with labels, rendered in the text exposition format.
// One process-wide registry, so every role started by `cdc all` shows up on the API's /metrics.
type Labels = Record<string, string | number>

const key = (labels: Labels) =>
  Object.keys(labels)
    .sort()
    .map((k) => `${k}="${String(labels[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',')

interface Metric {
  render(): string
}

/** A value per label set, rendered as one line each. */
abstract class Series implements Metric {
  protected values = new Map<string, number>()
  protected abstract readonly type: 'counter' | 'gauge'
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1) {
    const k = key(labels)
    this.values.set(k, (this.values.get(k) ?? 0) + by)
  }
  get(labels: Labels = {}) {
    return this.values.get(key(labels)) ?? 0
  }
  has(labels: Labels = {}) {
    return this.values.has(key(labels))
  }
  render() {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`]
    for (const [k, v] of this.values) lines.push(`${this.name}${k ? `{${k}}` : ''} ${v}`)
    return lines.join('\n')
  }
}

export class Counter extends Series {
  protected readonly type = 'counter'
  /** For a total kept elsewhere (e.g. the CPU time the OS counts). */
  set(value: number, labels: Labels = {}) {
    this.values.set(key(labels), value)
  }
}

export class Gauge extends Series {
  protected readonly type = 'gauge'
  set(value: number, labels: Labels = {}) {
    this.values.set(key(labels), value)
  }
}

export class Histogram implements Metric {
  private series = new Map<string, { counts: number[]; sum: number; count: number }>()
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: number[] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  ) {}
  observe(value: number, labels: Labels = {}) {
    const k = key(labels)
    let s = this.series.get(k)
    if (!s) this.series.set(k, (s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 }))
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]!) s.counts[i]!++
    s.sum += value
    s.count++
  }
  render() {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`]
    for (const [k, s] of this.series) {
      const sep = k ? `${k},` : ''
      this.buckets.forEach((b, i) => lines.push(`${this.name}_bucket{${sep}le="${b}"} ${s.counts[i]}`))
      lines.push(`${this.name}_bucket{${sep}le="+Inf"} ${s.count}`)
      lines.push(`${this.name}_sum${k ? `{${k}}` : ''} ${s.sum}`)
      lines.push(`${this.name}_count${k ? `{${k}}` : ''} ${s.count}`)
    }
    return lines.join('\n')
  }
}

const registry = new Map<string, Metric>()

function register<T extends Metric>(name: string, make: () => T): T {
  const existing = registry.get(name)
  if (existing) return existing as T
  const metric = make()
  registry.set(name, metric)
  return metric
}

export const counter = (name: string, help: string) => register(name, () => new Counter(name, help))
export const gauge = (name: string, help: string) => register(name, () => new Gauge(name, help))
/** Buckets for how long a change took to get somewhere (seconds): from 10 ms to a backlog of minutes. */
export const DELAY_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10, 30, 60, 300]

export const histogram = (name: string, help: string, buckets?: number[]) =>
  register(name, () => new Histogram(name, help, buckets))

const collectors: (() => void)[] = []

/** Runs before every render: for figures read on demand (process memory and CPU) rather than counted as they happen. */
export function onCollect(collect: () => void) {
  collectors.push(collect)
}

export function renderMetrics(): string {
  for (const collect of collectors) collect()
  return `${[...registry.values()].map((m) => m.render()).join('\n')}\n`
}
