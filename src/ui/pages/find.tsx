/** @jsxImportSource hono/jsx */
// Find an aggregate: by table and id (straight to its timeline), or by a column value searched in the read model
// (`<table>_state`, which keeps deleted rows' last image, so deleted customers are found too).
import type { Problem } from '../api-call.ts'
import { ProblemBox, Time } from '../parts.tsx'
import { timelineHref } from './timeline.tsx'

export interface FindHit {
  id: string
  deleted: boolean
  version: number
  occurredAt: string
  label: string
}

export interface FindProps {
  tables: string[]
  searchable: Record<string, readonly string[]>
  query: { table: string; id: string; field: string; value: string }
  hits: FindHit[] | null
  problem: Problem | null
}

export function FindPage(p: FindProps) {
  const q = p.query
  const fields = Object.entries(p.searchable).flatMap(([table, cols]) => cols.map((col) => `${table}.${col}`))
  return (
    <>
      <h1>Find</h1>
      <div class="grid">
        <form class="card" method="get" action="/ui/find" id="find-id">
          <h2>By id</h2>
          <div class="inline">
            <label>
              Table
              <select name="table">
                {p.tables.map((t) => (
                  <option value={t} selected={t === q.table}>
                    {t}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Id
              <input name="id" value={q.id} inputmode="numeric" required />
            </label>
            <button type="submit">Open timeline</button>
          </div>
        </form>
        <form class="card" method="get" action="/ui/find" id="find-value">
          <h2>By value</h2>
          <div class="inline">
            <label>
              Column
              <select name="field">
                {fields.map((f) => (
                  <option value={f} selected={f === q.field}>
                    {f}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Exact value
              <input name="value" value={q.value} placeholder="ann@example.com" required />
            </label>
            <button type="submit">Search</button>
          </div>
        </form>
      </div>
      {p.problem ? <ProblemBox problem={p.problem} /> : null}
      {p.hits ? (
        p.hits.length === 0 ? (
          <p class="muted">Nothing found.</p>
        ) : (
          <table class="cards" id="hits">
            <thead>
              <tr>
                <th>aggregate</th>
                <th>row</th>
                <th>last change</th>
              </tr>
            </thead>
            <tbody>
              {p.hits.map((h) => (
                <tr>
                  <td data-label="aggregate">
                    <a href={timelineHref(q.field.split('.')[0]!, h.id)}>
                      {q.field.split('.')[0]} {h.id}
                    </a>{' '}
                    {h.deleted ? <span class="badge bad">deleted</span> : null}
                  </td>
                  <td data-label="row">{h.label}</td>
                  <td data-label="last change">
                    v{h.version} <Time iso={h.occurredAt} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      ) : null}
    </>
  )
}
