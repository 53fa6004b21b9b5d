import type { Runtime } from '../runtime.ts'
// PLACEHOLDER — owned by the capture work.
export interface SnapshotOptions {
  batchSize?: number
  restart?: boolean
  progress?: boolean
}
export async function snapshot(_rt: Runtime, table: string, _options: SnapshotOptions = {}): Promise<{ table: string; rows: number }> {
  throw new Error(`snapshot ${table}: not implemented yet`)
}
