// What a process uses, read from /proc (Linux), for the benchmark and soak reports: CPU seconds and resident memory.
import { readFileSync } from 'node:fs'

/** A process of the run whose CPU and memory the reports show (PostgreSQL with its backends). */
export interface Proc {
  name: string
  pid: () => number | undefined
  children?: boolean
}

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on Linux everywhere that matters). */
const HZ = 100

/** The fields of /proc/<pid>/stat after the command name (which may contain spaces), or undefined once it is gone. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined
  }
}

/** CPU seconds (user + system: the 12th and 13th fields) a process used so far, or NaN once it is gone. */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid)
  return f ? (Number(f[11]) + Number(f[12])) / HZ : Number.NaN
}

/**
 * CPU seconds and resident bytes of a process and, with `children`, of its direct children (PostgreSQL's backends);
 * zero for a process that is gone. Shared memory (PostgreSQL's buffers) counts once, not once per process.
 */
export function usage(pid: number | undefined, children = false): { cpuSeconds: number; rss: number } {
  const out = { cpuSeconds: 0, rss: 0 }
  if (!pid) return out
  const pids = [pid]
  if (children) {
    for (const entry of new Bun.Glob('[0-9]*').scanSync({ cwd: '/proc', onlyFiles: false })) {
      if (Number(statFields(Number(entry))?.[1]) === pid) pids.push(Number(entry))
    }
  }
  let shared = 0
  for (const p of pids) {
    const cpu = cpuSeconds(p)
    if (Number.isNaN(cpu)) continue
    out.cpuSeconds += cpu
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8')
      const kb = (field: string) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+)`, 'm'))?.[1] ?? 0) * 1024
      out.rss += kb('RssAnon') + kb('RssFile')
      shared = Math.max(shared, kb('RssShmem'))
    } catch {}
  }
  out.rss += shared
  return out
}

/** The CPU seconds each of some processes spends during chosen spans of work, summed over the spans. */
export class CpuMeter {
  private readonly seconds: number[]
  constructor(private readonly procs: readonly Proc[]) {
    this.seconds = procs.map(() => 0)
  }
  /** Runs `work` and adds what each process spent meanwhile. */
  async measure<T>(work: () => Promise<T>): Promise<T> {
    const before = this.sample()
    const result = await work()
    this.sample().forEach((s, i) => (this.seconds[i]! += s - before[i]!))
    return result
  }
  /** µs of CPU per unit of the measured work (an event, a row write), per process: "name N, name N". */
  perUnit(units: number): string {
    return this.procs.map((p, i) => `${p.name} ${((this.seconds[i]! * 1e6) / Math.max(1, units)).toFixed(0)}`).join(', ')
  }
  private sample(): number[] {
    return this.procs.map((p) => usage(p.pid(), p.children).cpuSeconds)
  }
}
