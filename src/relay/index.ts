import type { Role, Runtime } from '../runtime.ts'
// PLACEHOLDER — owned by the relay work.
export async function startRelay(_rt: Runtime, _options: { mode?: 'poll' | 'wal' } = {}): Promise<Role> {
  throw new Error('relay: not implemented yet')
}
