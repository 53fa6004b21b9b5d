// The shape of one subcommand. A command finishes with an exit code, or returns the long-running roles it started.
import { UsageError } from '../errors.ts'
import type { Role, Runtime } from '../runtime.ts'

export interface Option {
  type: 'string' | 'boolean'
  description: string
  placeholder?: string
  multiple?: boolean
  /** The config key this flag overrides (e.g. http.port): its value is checked like the key's, errors name the flag. */
  config?: string
}

export interface CommandContext {
  rt: Runtime
  values: Record<string, string | boolean | (string | boolean)[] | undefined>
  positionals: string[]
}

export interface Command {
  name: string
  summary: string
  description?: string
  usage?: string
  options?: Record<string, Option>
  run(ctx: CommandContext): Promise<number | Role[]>
}

export function stringFlag(ctx: CommandContext, name: string): string | undefined {
  const v = ctx.values[name]
  return typeof v === 'string' ? v : undefined
}

export function intFlag(ctx: CommandContext, name: string, command: Command, min = 1): number | undefined {
  const text = stringFlag(ctx, name)
  if (text === undefined) return undefined
  const n = Number(text)
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name}: expected an integer ≥ ${min}, got ${JSON.stringify(text)}`, command.name)
  return n
}
