// `bun run bench [--scale N] [--only stage,stage]`: every benchmark case in one go, each next to the raw library doing
// the same work in the same run. Writes bench/results/latest.json, latest.md (table) and latest.svg (chart). With
// --only, the stages run replace their rows in the latest report (of the same scale), which records when they were
// rerun; a full run starts a new report.
import { parseArgs } from 'node:util'
import os from 'node:os'
import type { BenchCase, CaseResult } from './types.ts'
import { renderSvg, renderTable, type Report } from './report.ts'

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: { scale: { type: 'string' }, only: { type: 'string' } },
  strict: true,
})
const scale = Number(values.scale ?? process.env.CDC_BENCH_SCALE ?? 1)
if (!(scale > 0)) {
  console.error(`bench: --scale: expected a positive number, got ${JSON.stringify(values.scale)}`)
  process.exit(2)
}
const only = values.only?.split(',')

// Each stage's module is loaded only when run, so a missing stage does not stop the others.
const stages: [string, () => Promise<BenchCase>][] = [
  ['capture', async () => (await import('./cases/capture.ts')).capture],
  ['relay', async () => (await import('./cases/relay.ts')).relay],
  ['consume', async () => (await import('./cases/consume.ts')).consume],
  ['scaleout', async () => (await import('./cases/scaleout.ts')).scaleout],
  ['http', async () => (await import('./cases/http.ts')).http],
  ['e2e', async () => (await import('./cases/e2e.ts')).e2e],
  ['reads', async () => (await import('./cases/reads.ts')).reads],
]

// Each stage takes 1–2 minutes at scale 1 on a 2-core machine; one that runs far longer is reported as failed so the
// run still completes (its work may go on in the background until the process exits).
const stageBudgetMs = Math.max(120, 300 * scale) * 1000
// The reads stage bulk-loads up to a million history documents first (FerretDB inserts them at a few thousand a second).
const budgetOf = (stage: string) => (stage === 'reads' ? 6 * stageBudgetMs : stageBudgetMs)

const unknown = only?.filter((stage) => !stages.some(([name]) => name === stage)) ?? []
if (unknown.length > 0) {
  console.error(`bench: --only: no stage ${unknown.join(', ')} (stages: ${stages.map(([name]) => name).join(', ')})`)
  process.exit(2)
}

const root = new URL('..', import.meta.url).pathname
const up = Bun.spawnSync(['bash', `${root}test/stack/stack.sh`, 'up'], { stdout: 'inherit', stderr: 'inherit' })
if (up.exitCode !== 0) process.exit(1)

const started = Date.now()
const results: CaseResult[] = []
const failures: { stage: string; error: string }[] = []
for (const [stage, load] of stages) {
  if (only && !only.includes(stage)) continue
  const t0 = Date.now()
  console.error(`[bench] ${stage}: running (scale ${scale})`)
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    const run = await load()
    const overBudget = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${budgetOf(stage) / 1000} s`)), budgetOf(stage))
    })
    const got = await Promise.race([run({ scale, log: (m) => console.error(`[bench] ${stage}: ${m}`) }), overBudget])
    results.push(...got)
    for (const r of got) console.error(`[bench] ${stage}: ${r.name} ${r.ours.perSecond.toFixed(0)}/s${r.ratio ? ` ratio ${r.ratio.toFixed(2)}` : ''}`)
  } catch (error) {
    failures.push({ stage, error: (error as Error).stack ?? String(error) })
    console.error(`[bench] ${stage}: FAILED ${(error as Error).message}`)
  } finally {
    clearTimeout(timer)
  }
  console.error(`[bench] ${stage}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`)
}

const machine = {
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model ?? 'unknown',
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  os: `${os.type()} ${os.release()}`,
  bun: Bun.version,
}
const run: Report = { at: new Date().toISOString(), seconds: (Date.now() - started) / 1000, scale, machine, results, failures }
const dir = `${root}bench/results`
const report = only ? rerunInto(await Bun.file(`${dir}/latest.json`).json().catch(() => undefined), run, only) : run
await Bun.write(`${dir}/latest.json`, `${JSON.stringify(report, null, 2)}\n`)
await Bun.write(`${dir}/latest.md`, renderTable(report))
await Bun.write(`${dir}/latest.svg`, renderSvg(report.results))
console.log(renderTable(report))
process.exit(failures.length > 0 ? 1 : 0)

/** The latest report with the stages `ran` taken from this run (rows, failures) and the rerun recorded; a report of
 * another scale (or none) is not mixed with: the run stands alone. */
function rerunInto(latest: Report | undefined, run: Report, ran: string[]): Report {
  if (!latest || latest.scale !== run.scale || !Array.isArray(latest.results)) return run
  const keep = <T extends { stage: string }>(xs: T[]) => xs.filter((x) => !ran.includes(x.stage))
  const earlier = (latest.rerun ?? []).map((r) => ({ ...r, stages: r.stages.filter((s) => !ran.includes(s)) }))
  return {
    ...latest,
    machine: run.machine,
    results: [...keep(latest.results), ...run.results],
    failures: [...keep(latest.failures ?? []), ...run.failures],
    rerun: [...earlier.filter((r) => r.stages.length > 0), { at: run.at, stages: ran }],
  }
}
