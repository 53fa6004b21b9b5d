/** @jsxImportSource hono/jsx */
// The field-by-field view of one event: before → after for every column of the row images, the event's own
// `changes` highlighted, masked columns shown as masked (their value never exists in clear anywhere). A nested value
// (a JSON column, an aggregate's lines) is shown as a structured diff (doc-diff.ts): which line, which field.
import type { CdcEvent } from '../events.ts'
import { diffValue, isNested, type Entry, type Leaf, type List } from './doc-diff.ts'
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
          if (!masked.has(field) && (isNested(b) || isNested(a))) {
            return (
              // One cell across the table: a document needs the width (its own before/after columns are inside).
              <tr class={`${isChanged ? 'changed' : 'same'} nested-row`} data-field={field}>
                <td colspan={3} class="nested">
                  <div class="nested-field">{field}</div>
                  {isChanged ? <Entries entries={diffValue('', b, a)} /> : <Unchanged entries={diffValue('', b, a)} />}
                </td>
              </tr>
            )
          }
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

/** A nested value that did not change: folded, its structure one click away. */
function Unchanged({ entries }: { entries: Entry[] }) {
  const lists = entries.filter((e): e is List => e.kind === 'list')
  const summary = lists.length === 1 && entries.length === 1 ? `${lists[0]!.items.length} unchanged item(s)` : 'unchanged'
  return (
    <details>
      <summary>{summary}</summary>
      <Entries entries={entries} />
    </details>
  )
}

/** Leaves as one small before/after table, lists as their items: added, removed, changed (with only what changed). */
export function Entries({ entries }: { entries: Entry[] }) {
  const leaves = entries.filter((e): e is Leaf => e.kind === 'leaf')
  const lists = entries.filter((e): e is List => e.kind === 'list')
  // An added or removed item has one side only: path and value, no empty column.
  const side = leaves.every((l) => l.status === 'added') ? 'after' : leaves.every((l) => l.status === 'removed') ? 'before' : null
  return (
    <>
      {leaves.length > 0 && side ? (
        <table class="diff sub">
          <tbody>
            {leaves.map((l) => (
              <tr class={l.status} data-path={l.path}>
                <td>{l.path}</td>
                <td>
                  <span class={side}>
                    <Value value={side === 'after' ? l.after : l.before} />
                  </span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : leaves.length > 0 ? (
        <table class="diff sub">
          <tbody>
            {leaves.map((l) => (
              <tr class={l.status} data-path={l.path}>
                <td>{l.path}</td>
                <td>{l.status === 'added' ? null : <span class={l.status === 'same' ? '' : 'before'}><Value value={l.before} /></span>}</td>
                <td>{l.status === 'removed' ? null : <span class={l.status === 'same' ? '' : 'after'}><Value value={l.after} /></span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {lists.map((list) => (
        <div class="list" data-path={list.path}>
          {list.path ? <div class="list-path">{list.path}</div> : null}
          {list.items.length === 0 ? <span class="null">no items</span> : null}
          <ul>
            {list.items.map((item) => (
              <li class={`item ${item.status}`} data-key={item.label} data-status={item.status}>
                <span class="item-key">
                  {list.key ? `${list.key} ${item.label}` : `item ${item.label}`}
                </span>{' '}
                <span class={`badge ${item.status}`}>{item.status === 'same' ? 'unchanged' : item.status}</span>
                {item.status === 'same' && list.status !== 'same' ? null : (
                  <Entries entries={item.status === 'changed' ? item.entries.filter((e) => e.status !== 'same') : item.entries} />
                )}
              </li>
            ))}
          </ul>
        </div>
      ))}
    </>
  )
}
