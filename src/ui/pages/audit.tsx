/** @jsxImportSource hono/jsx */
// Audit search across tracked tables: by actor, table, event type and time range, newest first, paginated.
import type { Problem } from '../api-call.ts'
import { Pager, ProblemBox, Time } from '../parts.tsx'
import { EventCells, type HistoryItem } from './timeline.tsx'

export interface AuditFilter {
  actor: string
  table: string
  type: string
  from: string
  to: string
}

export function AuditPage(p: { filter: AuditFilter; tables: string[]; items: HistoryItem[]; problem: Problem | null; next: string | null }) {
  const f = p.filter
  return (
    <>
      <h1>Audit search</h1>
      <form class="card inline" method="get" action="/ui/audit">
        <label>
          Actor
          <input name="actor" value={f.actor} />
        </label>
        <label>
          Table
          <select name="table">
            <option value="">any</option>
            {p.tables.map((t) => (
              <option value={t} selected={t === f.table}>
                {t}
              </option>
            ))}
          </select>
        </label>
        <label>
          Event type
          <input name="type" value={f.type} placeholder="CustomerNameChanged" />
        </label>
        <label>
          From
          <input name="from" value={f.from} placeholder="2026-11-22T00:00:00Z" />
        </label>
        <label>
          To
          <input name="to" value={f.to} placeholder="2026-11-23" />
        </label>
        <button type="submit">Search</button>
      </form>
      {p.problem ? <ProblemBox problem={p.problem} /> : null}
      {!p.problem && p.items.length === 0 ? <p class="muted">No events match.</p> : null}
      {p.items.length ? (
        <table class="cards" id="results">
          <thead>
            <tr>
              <th>when</th>
              <th>aggregate</th>
              <th>event</th>
              <th>who</th>
              <th>why</th>
            </tr>
          </thead>
          <tbody>
            {p.items.map((e) => (
              <tr>
                <td data-label="when">
                  <Time iso={e.occurredAt} />
                </td>
                <EventCells e={e} />
                <td data-label="who">{e.actor.id}</td>
                <td data-label="why">{e.reason ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      <Pager next={p.next} />
    </>
  )
}
