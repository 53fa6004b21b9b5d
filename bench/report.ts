// The benchmark report as people read it: a Markdown table and an SVG bar chart (no dependencies).
import type { CaseResult } from './types.ts'

export interface Report {
  at: string
  seconds: number
  scale: number
  machine: { cpus: number; cpuModel: string; memoryGiB: number; os: string; bun: string }
  results: CaseResult[]
  failures: { stage: string; error: string }[]
  /** Stages run again since (`--only`): their rows are from that run. */
  rerun?: { at: string; stages: string[] }[]
}

const n = (x: number | undefined, digits = 0) => (x === undefined || Number.isNaN(x) ? '–' : x.toFixed(digits))

function verdict(r: CaseResult): string {
  const t = r.target
  if (!t) return ''
  const checks: boolean[] = []
  if (t.ratio !== undefined) checks.push((r.ratio ?? 0) >= t.ratio)
  if (t.perSecond !== undefined) checks.push(r.ours.perSecond >= t.perSecond)
  if (t.p99Ms !== undefined) checks.push((r.ours.p99Ms ?? Infinity) <= t.p99Ms)
  const goal = [
    t.ratio !== undefined ? `≥ ${t.ratio}×` : '',
    t.perSecond !== undefined ? `≥ ${t.perSecond}/s` : '',
    t.p99Ms !== undefined ? `p99 ≤ ${t.p99Ms} ms` : '',
  ]
    .filter(Boolean)
    .join(', ')
  return `${checks.every(Boolean) ? 'met' : 'MISSED'} (${goal})`
}

export function renderTable(report: Report): string {
  const m = report.machine
  const lines = [
    `Benchmark run ${report.at} — ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, ${m.os}, Bun ${m.bun}, scale ${report.scale}, ${n(report.seconds)} s.`,
    'Every server (PostgreSQL, Kafka, FerretDB) on the same machine; ratios are ours ÷ the raw library in the same run.',
    ...(report.rerun?.length ? [`Stages rerun since, their rows from that run: ${report.rerun.map((r) => `${r.stages.join(', ')} at ${r.at}`).join('; ')}.`] : []),
    '',
    '| case | unit | ours /s | raw /s | ratio | p50 ms | p95 ms | p99 ms | target | notes |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |',
    ...report.results.map(
      (r) =>
        `| ${r.name} | ${r.unit} | ${n(r.ours.perSecond)} | ${n(r.raw?.perSecond)} | ${n(r.ratio, 2)} | ${n(r.ours.p50Ms, 1)} | ${n(r.ours.p95Ms, 1)} | ${n(r.ours.p99Ms, 1)} | ${verdict(r)} | ${r.notes ?? ''} |`,
    ),
  ]
  for (const f of report.failures) lines.push('', `**${f.stage} failed:** \`${f.error.split('\n')[0]}\``)
  return `${lines.join('\n')}\n`
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

/** Left: throughput of ours vs raw per case (log scale); right: latency percentiles where measured. */
export function renderSvg(results: CaseResult[]): string {
  const rowH = 34
  const labelW = 190
  const barW = 360
  const latX = labelW + barW + 150
  const latW = 260
  const height = 60 + results.length * rowH
  const maxRate = Math.max(1, ...results.flatMap((r) => [r.ours.perSecond, r.raw?.perSecond ?? 0]))
  const maxLat = Math.max(1, ...results.map((r) => r.ours.p99Ms ?? 0))
  const scaleRate = (x: number) => (x <= 0 ? 0 : (Math.log10(1 + x) / Math.log10(1 + maxRate)) * barW)
  const scaleLat = (x: number) => (x / maxLat) * latW
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${latX + latW + 40}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${labelW}" y="20" font-weight="bold">throughput per second (log scale): ours (dark) vs raw library (light)</text>`,
    `<text x="${latX}" y="20" font-weight="bold">latency ms: p50 / p95 / p99</text>`,
  ]
  results.forEach((r, i) => {
    const y = 40 + i * rowH
    parts.push(`<text x="4" y="${y + 14}">${esc(r.name)}</text>`)
    parts.push(`<rect x="${labelW}" y="${y}" width="${scaleRate(r.ours.perSecond).toFixed(1)}" height="12" fill="#1f5f99"/>`)
    parts.push(`<text x="${labelW + scaleRate(r.ours.perSecond) + 4}" y="${y + 10}">${r.ours.perSecond.toFixed(0)}</text>`)
    if (r.raw) {
      parts.push(`<rect x="${labelW}" y="${y + 14}" width="${scaleRate(r.raw.perSecond).toFixed(1)}" height="12" fill="#9cc3e6"/>`)
      parts.push(`<text x="${labelW + scaleRate(r.raw.perSecond) + 4}" y="${y + 24}">${r.raw.perSecond.toFixed(0)}${r.ratio ? ` (${r.ratio.toFixed(2)}×)` : ''}</text>`)
    }
    const lat = [r.ours.p50Ms, r.ours.p95Ms, r.ours.p99Ms]
    const colors = ['#2e8b57', '#e0a800', '#c0392b']
    lat.forEach((v, j) => {
      if (v === undefined) return
      parts.push(`<rect x="${latX}" y="${y + j * 8}" width="${Math.max(1, scaleLat(v)).toFixed(1)}" height="7" fill="${colors[j]}"/>`)
    })
    if (r.ours.p99Ms !== undefined) parts.push(`<text x="${latX + scaleLat(r.ours.p99Ms) + 4}" y="${y + 20}">${lat.map((v) => n(v, 1)).join(' / ')}</text>`)
  })
  parts.push('</svg>')
  return `${parts.join('\n')}\n`
}
