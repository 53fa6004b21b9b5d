// The dead-letter message: the original key, value and headers, plus where it came from and why it failed.
import type { InMessage, OutMessage } from '../clients/kafka.ts'
import { DlqHeaders, dlqTopic } from '../events.ts'

const OWN_HEADERS = new Set<string>(Object.values(DlqHeaders))

/** Where redrive records the DLQ entries it republished (src/redrive/ledger.ts); the DLQ depth gauge subtracts them. */
export const REDRIVEN_COLLECTION = 'cdc_dlq_redriven'

export interface DeadLetterInfo {
  error: string
  group: string
  at: string
  /** True when the message did not fail itself but waits behind its aggregate's failed message. */
  parked: boolean
}

export function deadLetter(message: InMessage, info: DeadLetterInfo): OutMessage {
  const headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(message.headers)) if (!OWN_HEADERS.has(k)) headers[k] = v
  Object.assign(headers, {
    [DlqHeaders.error]: info.error.slice(0, 2000),
    [DlqHeaders.topic]: message.topic,
    [DlqHeaders.partition]: String(message.partition),
    [DlqHeaders.offset]: message.offset,
    [DlqHeaders.group]: info.group,
    [DlqHeaders.at]: info.at,
    // How often it was redriven before; redrive increments it.
    [DlqHeaders.redriveCount]: message.headers[DlqHeaders.redriveCount] ?? '0',
  })
  if (info.parked) headers[DlqHeaders.parked] = 'true'
  return { topic: dlqTopic(message.topic), key: message.key ?? '', value: message.value ?? '', headers }
}
