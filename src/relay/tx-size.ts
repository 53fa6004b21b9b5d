// tx.size: how many events the envelope's source transaction produced, so a consumer can tell it has all of them.
// Only the relay can know it exactly without a write-path cost (the count is final only at commit, and the capture
// trigger runs per row): every relay mode publishes whole source transactions in one batch (poll: every outbox row of
// each transaction; wal, emit and logical: whole decoded transactions), so counting a batch's events per tx.id is the
// transaction's size. The size is added to the Kafka value; cdc.event_store keeps the envelope as captured.
import type { Outgoing } from './publish.ts'

/**
 * The envelope's tx object as both writers of envelope text spell it: PostgreSQL's jsonb text (`"tx": {"id": "7",
 * "index": 0}`: poll, wal and logical modes) and cdc.envelope's compact text (emit mode). Top-level `tx` precedes every
 * free-text field in both key orders, and a quote inside a JSON string is escaped, so the first match is the
 * envelope's own. Found with indexOf and read by hand: a regular expression cost several times as much per event.
 */
const SPELLINGS = [
  { open: '"tx": {"id": "', index: '", "index": ', space: ' ' },
  { open: '"tx":{"id":"', index: '","index":', space: '' },
]
const isDigit = (c: number) => c >= 48 && c <= 57
const CLOSE_BRACE = 125

/** The batch's events with tx.size set (the batch must hold whole source transactions). */
export function withTxSizes(events: readonly Outgoing[]): Outgoing[] {
  const located = events.map((e) => locate(e.value))
  const sizes = new Map<string, number>()
  for (const l of located) sizes.set(l.txId, (sizes.get(l.txId) ?? 0) + 1)
  return events.map((e, i) => ({ ...e, value: located[i]!.withSize(sizes.get(located[i]!.txId)!) }))
}

/** One envelope with tx.size set to `size` (a replay, which counted its transaction in the event store). */
export function withTxSize(value: string, size: number): string {
  return locate(value).withSize(size)
}

function locate(value: string): { txId: string; withSize(size: number): string } {
  for (const { open, index, space } of SPELLINGS) {
    const at = value.indexOf(open)
    if (at < 0) continue
    const idStart = at + open.length
    let idEnd = idStart
    while (isDigit(value.charCodeAt(idEnd))) idEnd++
    if (idEnd === idStart || !value.startsWith(index, idEnd)) break
    let end = idEnd + index.length
    const indexStart = end
    while (isDigit(value.charCodeAt(end))) end++
    // anything but `<digits>}` (e.g. a size already there): not this spelling after all
    if (end === indexStart || value.charCodeAt(end) !== CLOSE_BRACE) break
    const txId = value.slice(idStart, idEnd)
    return { txId, withSize: (size) => `${value.slice(0, end)},${space}"size":${space}${size}${value.slice(end)}` }
  }
  // Any other spelling of the envelope: parse it (slower, same result).
  let event: { tx?: { id?: unknown; size?: number } } | undefined
  try {
    event = JSON.parse(value) as typeof event
  } catch {}
  const tx = event?.tx
  // Not an envelope with a transaction (written into the event store by hand): published as it is, never a relay
  // stuck on it; the consumer judges it (DLQ).
  if (typeof tx !== 'object' || tx === null || typeof tx.id !== 'string') return { txId: '', withSize: () => value }
  return {
    txId: tx.id,
    withSize(size) {
      tx.size = size
      return JSON.stringify(event)
    },
  }
}
