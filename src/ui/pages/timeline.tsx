/** @jsxImportSource hono/jsx */
// One aggregate's history, newest first: who, why, when, the event type and the diff of each event; events of the
// same transaction linked; and the row as it was at a chosen instant ("as of").
import type { CdcEvent } from '../../events.ts'
import type { Problem } from '../api-call.ts'
import { Diff, Entries } from '../diff.tsx'
import { diffValue, isNested } from '../doc-diff.ts'
import { Pager, ProblemBox, Time, Value } from '../parts.tsx'

export type HistoryItem = CdcEvent & { storedAt: string; kafka: { topic: string; partition: number; offset: string } }
export interface AsOf {
  aggregate: { type: string; id: string }
  version: number
  deleted: boolean
  row: Record<string, unknown> | null
}

export interface TimelineProps {
  table: string
  id: string
  events: HistoryItem[]
  problem: Problem | null
  next: string | null
  asOfText: string
  asOf: AsOf | Problem | null
  masked: ReadonlySet<string>
}

export const eventAnchor = (e: { id: string }) => `e-${e.id}`
export const timelineHref = (table: string, id: string) => `/ui/t/${encodeURIComponent(table)}/${encodeURIComponent(id)}`

/** Two table cells of an event listed outside its timeline (audit, transaction): its aggregate, linked to the event. */
export function EventCells({ e }: { e: HistoryItem }) {
  return (
    <>
      <td data-label="aggregate">
        <a href={`${timelineHref(e.aggregate.type, e.aggregate.id)}#${eventAnchor(e)}`}>
          {e.aggregate.type} {e.aggregate.id}
        </a>
      </td>
      <td data-label="event">
        {e.type} <span class="badge">v{e.version}</span>
      </td>
    </>
  )
}

export function TimelinePage(p: TimelineProps) {
  const byTx = new Map<string, HistoryItem[]>()
  for (const e of p.events) byTx.set(e.tx.id, [...(byTx.get(e.tx.id) ?? []), e])
  const self = timelineHref(p.table, p.id)
  return (
    <>
      <h1>
        {p.table} <code>{p.id}</code>
      </h1>
      <form class="card inline" method="get" action={self}>
        <label>
          Row as of (ISO-8601, UTC unless a zone is given)
          <input name="asof" value={p.asOfText} placeholder="2026-11-22T19:33:00.123456Z" size={32} />
        </label>
        <button type="submit">Show</button>
        {p.asOfText ? <a href={self}>clear</a> : null}
      </form>
      {p.asOf ? <AsOfView asOf={p.asOf} at={p.asOfText} masked={p.masked} /> : null}
      {p.problem ? <ProblemBox problem={p.problem} /> : null}
      {!p.problem && p.events.length === 0 ? <p class="muted">No events recorded for this aggregate (yet).</p> : null}
      <section id="timeline">
        {p.events.map((e) => {
          const siblings = (byTx.get(e.tx.id) ?? []).filter((s) => s.id !== e.id)
          return (
            <article class={`event op-${e.op}`} id={eventAnchor(e)} data-version={e.version} data-type={e.type}>
              <header>
                <span class="type">{e.type}</span>
                <span class="badge">v{e.version}</span>
                <Time iso={e.occurredAt} />
              </header>
              <div class="meta">
                <span>
                  who <b class="actor">{e.actor.id}</b> <small>via {e.actor.source}</small>
                </span>
                <span>
                  why <b class="reason">{e.reason ?? '—'}</b>
                </span>
                {e.correlationId ? (
                  <span>
                    request <code>{e.correlationId}</code>
                  </span>
                ) : null}
              </div>
              <Diff event={e} masked={p.masked} />
              {e.op === 'm' && e.data !== undefined ? <pre>{JSON.stringify(e.data, null, 2)}</pre> : null}
              <div class="meta tx">
                <span>
                  transaction <a href={`/ui/tx/${encodeURIComponent(e.tx.id)}`}>{e.tx.id}</a>
                  {e.tx.size ? ` (event ${e.tx.index + 1} of ${e.tx.size})` : null}
                </span>
                {siblings.length ? (
                  <span>
                    with{' '}
                    {siblings.map((s, i) => (
                      <>
                        {i > 0 ? ', ' : ''}
                        <a href={`#${eventAnchor(s)}`}>
                          {s.type} v{s.version}
                        </a>
                      </>
                    ))}
                  </span>
                ) : null}
                <a class="asof-link" href={`${self}?asof=${encodeURIComponent(e.occurredAt)}`}>
                  row as of this event
                </a>
              </div>
            </article>
          )
        })}
      </section>
      <Pager next={p.next} label="Older events" />
    </>
  )
}

function AsOfView({ asOf, at, masked }: { asOf: AsOf | Problem; at: string; masked: ReadonlySet<string> }) {
  if ('status' in asOf) return <ProblemBox problem={asOf} />
  return (
    <section class="card" id="asof">
      <h2>
        As of <code>{at}</code>: version {asOf.version}
        {asOf.deleted ? <span class="badge bad">deleted</span> : null}
      </h2>
      <table class="diff">
        <tbody>
          {Object.entries(asOf.row ?? {}).map(([field, value]) => (
            <tr data-field={field}>
              <td>{field}</td>
              <td>
                {!masked.has(field) && isNested(value) ? (
                  <Entries entries={diffValue('', value, value)} />
                ) : (
                  <Value value={value} masked={masked.has(field) && value !== null} />
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  )
}
