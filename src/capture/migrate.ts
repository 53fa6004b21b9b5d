import type { Runtime } from '../runtime.ts'
// PLACEHOLDER — owned by the capture work.
export async function migrate(_rt: Runtime): Promise<{ applied: string[]; tracked: string[] }> {
  throw new Error('migrate: not implemented yet')
}
