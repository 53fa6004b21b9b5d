/** @jsxImportSource hono/jsx */
// Small pieces shared by the pages: timestamps (relative and exact), values (null, masked, JSON), problems, pagers.
import type { Problem } from './api-call.ts'

/** What the capture writes in place of a masked column's value. */
export const MASK = '***'

export function relative(iso: string, now = Date.now()): string {
  const seconds = Math.round((now - Date.parse(iso)) / 1000)
  const abs = Math.abs(seconds)
  const [n, unit] =
    abs < 60 ? [abs, 'second'] : abs < 3600 ? [Math.floor(abs / 60), 'minute'] : abs < 86400 ? [Math.floor(abs / 3600), 'hour'] : [Math.floor(abs / 86400), 'day']
  if (abs < 5) return 'just now'
  const text = `${n} ${unit}${n === 1 ? '' : 's'}`
  return seconds >= 0 ? `${text} ago` : `in ${text}`
}

/** Relative time for reading, the exact microsecond UTC instant beside it (and in `datetime` for the script). */
export function Time({ iso }: { iso: string }) {
  return (
    <span class="time">
      <time datetime={iso} data-relative>
        {relative(iso)}
      </time>{' '}
      <code class="exact">{iso}</code>
    </span>
  )
}

export function Value({ value, masked }: { value: unknown; masked?: boolean }) {
  if (masked || value === MASK) return <span class="masked" title="masked column: the value is never captured in clear">masked</span>
  if (value === null) return <span class="null">null</span>
  if (value === undefined) return <span class="null">—</span>
  if (typeof value === 'string') return <span class="str">{value}</span>
  return <code>{spacedJson(value)}</code>
}

/**
 * JSON with a space after each `,` `:` `[` `{`, so a long value wraps between its parts rather than inside a word
 * (a line break inside a JSON string is escaped, so every real newline here is formatting).
 */
export function spacedJson(value: unknown): string {
  return JSON.stringify(value, null, 1).replace(/\n\s*/g, ' ')
}

export function ProblemBox({ problem }: { problem: Problem }) {
  return (
    <div class="problem" role="alert">
      <strong>{problem.status === 403 ? 'Not allowed' : problem.status === 404 ? 'Not found' : problem.status >= 500 ? 'Unavailable' : 'Invalid request'}</strong>
      <p>{problem.detail}</p>
      {problem.errors?.length ? (
        <ul>
          {problem.errors.map((e) => (
            <li>
              <code>{e.path}</code>: {e.message}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  )
}

export function Pager({ next, label = 'Older' }: { next: string | null; label?: string }) {
  return next ? (
    <nav class="pager">
      <a href={next} rel="next">
        {label} →
      </a>
    </nav>
  ) : null
}

/** Status code for a page that shows an API problem: the API's 4xx/5xx, so bad input never looks like success. */
export const statusOf = (problem: Problem) => (problem.status >= 400 && problem.status < 600 ? problem.status : 500) as 400
