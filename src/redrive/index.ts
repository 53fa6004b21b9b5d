import type { Runtime } from '../runtime.ts'
// PLACEHOLDER — owned by the consume work.
export interface RedriveFilter {
  topic?: string
  aggregate?: string
  since?: Date
  error?: string
  limit?: number
  dryRun?: boolean
}
export async function redrive(_rt: Runtime, _filter: RedriveFilter): Promise<{ redriven: number; kept: number; dryRun: boolean }> {
  throw new Error('redrive: not implemented yet')
}
