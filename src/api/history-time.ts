// History timestamps are compared as strings in MongoDB, which is only time order when every value has the envelope's
// exact shape (UTC, 6 fractional digits, 'Z'). Query parameters are normalised to that shape first.
import { ApiError } from './problem.ts'

const PARTS = /^(\d{4}-\d\d-\d\d)(?:T(\d\d:\d\d(?::\d\d)?)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)?)?$/

/** '2026-11-22T20:33:00.1234567+01:00' → '2026-11-22T19:33:00.123456Z'; a date alone is midnight UTC. */
export function toMicros(text: string, path: string): string {
  const m = PARTS.exec(text)
  const ms = m ? Date.parse(`${m[1]}T${m[2] ?? '00:00'}${m[2]?.length === 5 ? ':00' : ''}${zone(m[4])}`) : Number.NaN
  if (!m || Number.isNaN(ms) || !realDay(m[1]!)) {
    throw new ApiError(400, 'validation', `${path} is not a valid timestamp`, [{ path, message: 'not a valid ISO-8601 timestamp' }])
  }
  const fraction = `${m[3] ?? ''}000000`.slice(0, 6)
  return `${new Date(ms).toISOString().slice(0, 19)}.${fraction}Z`
}

/** Date.parse rolls 2026-02-30 over into March; a day that does not exist is an error instead. */
function realDay(date: string) {
  const [y, mo, d] = date.split('-').map(Number) as [number, number, number]
  return new Date(Date.UTC(y, mo - 1, d)).getUTCDate() === d
}

/** No zone means UTC (the history is in UTC); '+0100' becomes '+01:00' for Date.parse. */
function zone(z: string | undefined) {
  if (!z || z === 'Z') return 'Z'
  return z.includes(':') ? z : `${z.slice(0, 3)}:${z.slice(3)}`
}
