// Structured JSON logs, one object per line on stderr (stdout stays for command output). Fields, not formatted text.
import { counter } from './metrics.ts'

/** Warnings and errors by role: one alertable series for every failure path, whatever its own metric. */
const problems = counter('cdc_log_problems_total', 'Warnings and errors logged, by level and role (every failure path logs one)')
type Level = 'debug' | 'info' | 'warn' | 'error'
const rank: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 }

export type Fields = Record<string, unknown>

export interface Logger {
  debug(msg: string, fields?: Fields): void
  info(msg: string, fields?: Fields): void
  warn(msg: string, fields?: Fields): void
  error(msg: string, fields?: Fields): void
  child(fields: Fields): Logger
}

let threshold: Level = (process.env.CDC_LOG_LEVEL as Level) in rank ? (process.env.CDC_LOG_LEVEL as Level) : 'info'

export function setLogLevel(level: Level) {
  threshold = level
}

export function createLogger(base: Fields = {}, write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const emit = (level: Level, msg: string, fields?: Fields) => {
    if (level === 'warn' || level === 'error') problems.inc({ level, role: String(base.role ?? 'main') })
    if (rank[level] < rank[threshold]) return
    write(`${JSON.stringify({ t: new Date().toISOString(), level, msg, ...base, ...serialize(fields) })}\n`)
  }
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger({ ...base, ...fields }, write),
  }
}

/** Errors become { error, code } — never a stack for expected failures, and never connection strings. */
function serialize(fields?: Fields): Fields | undefined {
  if (!fields) return fields
  const out: Fields = {}
  for (const [k, v] of Object.entries(fields)) {
    if (v instanceof Error) {
      out[k] = scrub(v.message)
      const code = (v as { code?: unknown }).code
      if (code !== undefined) out[`${k}Code`] = code
    } else out[k] = typeof v === 'string' ? scrub(v) : v
  }
  return out
}

/** Passwords inside URLs never reach a log line. */
export function scrub(text: string) {
  return text.replace(/(\w+:\/\/[^:/@\s]+):[^@\s]*@/g, '$1:***@')
}

export const log = createLogger()
