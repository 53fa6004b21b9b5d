import type { Role, Runtime } from '../runtime.ts'
// PLACEHOLDER — owned by the API work.
export async function startApi(_rt: Runtime): Promise<Role> {
  throw new Error('serve: not implemented yet')
}
