/** @jsxImportSource hono/jsx */
// The field-by-field view of one event: before → after for every column of the row images, the event's own
// `changes` highlighted, masked columns shown as masked (their value never exists in clear anywhere).
import type { CdcEvent } from '../events.ts'
import { Value } from './parts.tsx'

export function Diff({ event, masked }: { event: CdcEvent; masked: ReadonlySet<string> }) {
  const before = event.before ?? {}
  const after = event.after ?? {}
  const changed = new Set(event.changes.map((c) => c.path))
  const fields = [...new Set([...Object.keys(after), ...Object.keys(before), ...changed])]
  // Changed fields first: they are what the event is about.
  fields.sort((a, b) => Number(changed.has(b)) - Number(changed.has(a)))
  if (fields.length === 0) return null
  return (
    <table class="diff">
      <thead>
        <tr>
          <th>field</th>
          <th>before</th>
          <th>after</th>
        </tr>
      </thead>
      <tbody>
        {fields.map((field) => {
          const isChanged = changed.has(field)
          const change = event.changes.find((c) => c.path === field)
          const b = change ? change.before : event.before === null ? undefined : before[field]
          const a = change ? change.after : event.after === null ? undefined : after[field]
          return (
            <tr class={isChanged ? 'changed' : 'same'} data-field={field}>
              <td>{field}</td>
              <td>
                <span class={isChanged ? 'before' : ''}>
                  <Value value={b} masked={masked.has(field) && b !== undefined && b !== null} />
                </span>
              </td>
              <td>
                <span class={isChanged ? 'after' : ''}>
                  <Value value={a} masked={masked.has(field) && a !== undefined && a !== null} />
                </span>
              </td>
            </tr>
          )
        })}
      </tbody>
    </table>
  )
}
