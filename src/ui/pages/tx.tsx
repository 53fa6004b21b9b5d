/** @jsxImportSource hono/jsx */
// Every event of one database transaction, across tables, in the order the transaction made them.
import { Time } from '../parts.tsx'
import { EventCells, type HistoryItem } from './timeline.tsx'

export function TxPage({ txId, events }: { txId: string; events: HistoryItem[] }) {
  // tx.size (set by the relay): how many events the transaction made, so a missing one shows.
  const size = events.find((e) => e.tx.size !== undefined)?.tx.size
  return (
    <>
      <h1>
        Transaction <code>{txId}</code>
      </h1>
      {events.length === 0 ? <p class="muted">No stored events belong to this transaction.</p> : null}
      {size !== undefined ? (
        <p class={events.length < size ? 'problem' : 'muted'} id="tx-size">
          {events.length} of the transaction's {size} events are in the history{events.length < size ? ' (the rest are not stored yet, or are in the dead letters)' : ''}.
        </p>
      ) : null}
      <table class="cards">
        <thead>
          <tr>
            <th>#</th>
            <th>aggregate</th>
            <th>event</th>
            <th>who / why</th>
            <th>when</th>
          </tr>
        </thead>
        <tbody>
          {events.map((e) => (
            <tr>
              <td data-label="#">{e.tx.index + 1}</td>
              <EventCells e={e} />
              <td data-label="who / why">
                {e.actor.id} — {e.reason ?? '—'}
              </td>
              <td data-label="when">
                <Time iso={e.occurredAt} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  )
}
