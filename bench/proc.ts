// What a process uses, read from /proc (Linux), for the benchmark and soak reports: CPU seconds and resident memory.
import { readFileSync } from 'node:fs'

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
