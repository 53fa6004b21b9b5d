import type { Runtime } from '../runtime.ts'
// PLACEHOLDER — owned by the capture work.
export async function track(_rt: Runtime, table: string): Promise<{ table: string; tracked: boolean }> {
  throw new Error(`track ${table}: not implemented yet`)
}
export async function untrack(_rt: Runtime, table: string): Promise<{ table: string; tracked: boolean }> {
  throw new Error(`untrack ${table}: not implemented yet`)
}
