// The chaos run's published results: one JSON per capture mode (`chaos-<capture>.json`, its last run) and a summary of
// every mode's last run (`chaos-latest.{json,md}`), so runs of the two modes at different times make one table.
import { readdirSync, readFileSync } from 'node:fs'
import type { Verdict } from './verify.ts'

export interface ChaosResult {
  at: string
  capture: string
  relayMode: string
  /** Seconds of load with faults, and of the whole run (load, drain and check). */
  loadSeconds: number
  durationSeconds: number
  rounds: number
  sqlRows: number
  /** The plain-SQL load's cap in events per second (null: none). */
  sqlRate: number | null
  /** all: this run injected every fault; own: only those on its own processes, beside a run that did the servers'. */
  faultSet: string
  faults: { fault: string; at: string; ok: boolean; error?: string }[]
  load: { apiOk: number; apiFailed: number; sqlOk: number; sqlFailed: number }
  drained: boolean
  verdict: Verdict
  ok: boolean
  /** The machine: cores and load averages (1 min) when the run started and ended; other work may share it. */
  machine: { cpus: number; loadStart: number; loadEnd: number }
}

const MODE_FILE = /^chaos-(outbox|emit|logical)\.json$/

export async function publishChaos(outDir: string, result: ChaosResult): Promise<void> {
  await Bun.write(`${outDir}/chaos-${result.capture}.json`, `${JSON.stringify(result, null, 2)}\n`)
  const runs = readdirSync(outDir)
    .filter((f) => MODE_FILE.test(f))
    .map((f) => JSON.parse(readFileSync(`${outDir}/${f}`, 'utf8')) as ChaosResult)
    .sort((a, b) => a.capture.localeCompare(b.capture))
  await Bun.write(`${outDir}/chaos-latest.json`, `${JSON.stringify({ at: new Date().toISOString(), runs }, null, 2)}\n`)
  await Bun.write(`${outDir}/chaos-latest.md`, chaosTable(runs))
}

export function chaosTable(runs: ChaosResult[]): string {
  const n = (x: number) => x.toLocaleString('en-US')
  return [
    '| mode | events | faults injected | lost | duplicated | gaps | states ≠ rows | DLQ | duration | result |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...runs.map((r) => {
      const v = r.verdict
      const failed = r.faults.filter((f) => !f.ok).length
      return (
        `| ${r.capture} (relay ${r.relayMode}) | ${n(v.written)} | ${r.faults.length}${failed ? ` (${failed} failed)` : ''} | ${v.missing} | ${v.duplicates} | ` +
        `${v.gaps} | ${v.stateMismatches} of ${n(v.stateChecked)} | ${v.dlqDepth} | ${Math.round(r.loadSeconds / 60)} min load, ${Math.round(r.durationSeconds / 60)} min in all | ` +
        `${r.ok ? 'pass' : r.drained ? 'FAILED' : 'FAILED (not drained)'} |`
      )
    }),
    '',
    ...runs.map(
      (r) =>
        `${r.capture}: ${r.at}, ${r.rounds} round(s) of ${new Set(r.faults.map((f) => f.fault)).size} fault kinds (${[...new Set(r.faults.map((f) => f.fault))].join('; ')})` +
        `${r.faultSet === 'own' ? ', beside a concurrent run on the same servers that stopped and stalled them (this run lived through those too)' : ''}; ` +
        `API commands ok/failed ${r.load.apiOk}/${r.load.apiFailed}, SQL transactions (${r.sqlRows} rows each) ok/failed ${r.load.sqlOk}/${r.load.sqlFailed}; ` +
        `machine ${r.machine.cpus} cores, load average ${r.machine.loadStart.toFixed(1)} at the start and ${r.machine.loadEnd.toFixed(1)} at the end (shared with other work).`,
    ),
    '',
  ].join('\n')
}
