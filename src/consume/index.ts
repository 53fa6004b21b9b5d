import type { Role, Runtime } from '../runtime.ts'
// PLACEHOLDER — owned by the consume work.
export async function startConsumer(_rt: Runtime): Promise<Role> {
  throw new Error('consume: not implemented yet')
}
