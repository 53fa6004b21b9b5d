// Build and process figures on every /metrics (the API's and the ops port's): what runs, how much memory and CPU.
import { buildInfo } from '../build-info.ts'
import { counter, gauge, onCollect } from '../metrics.ts'

const build = gauge('cdc_build_info', 'Always 1; the labels say which build runs (version, commit, build date)')
const rss = gauge('process_resident_memory_bytes', 'Resident memory size in bytes')
const heap = gauge('cdc_process_heap_used_bytes', 'JavaScript heap in use, in bytes')
const cpu = counter('process_cpu_seconds_total', 'User and system CPU time spent, in seconds')
const started = gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch, in seconds')

let registered = false

export function registerProcessMetrics() {
  if (registered) return
  registered = true
  const info = buildInfo()
  build.set(1, { version: info.version, commit: info.commit, built: info.date })
  started.set(Math.round((Date.now() - performance.now()) / 1000))
  onCollect(() => {
    const memory = process.memoryUsage()
    rss.set(memory.rss)
    heap.set(memory.heapUsed)
    const usage = process.cpuUsage()
    cpu.set((usage.user + usage.system) / 1e6)
  })
}
