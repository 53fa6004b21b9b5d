// The dead-letter message: the original key, value and headers, plus where it came from and why it failed; and its
// send, which must always succeed while Kafka is up (the offset cannot move past a message whose copy was refused).
import { recordBytes, type InMessage, type KafkaClient, type OutMessage, type Producer } from '../clients/kafka.ts'
import { DlqHeaders, dlqTopic } from '../events.ts'

const OWN_HEADERS = new Set<string>(Object.values(DlqHeaders))
/** Room kept for our own headers when deciding whether an original still fits. */
const PREVIEW_CHARS = 512

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
  // A missing key or a tombstone stays what it was.
  return { topic: dlqTopic(message.topic), key: message.key, value: message.value, headers }
}

/** The reference that replaces an original too large for the DLQ topic: where to read it, and a preview. */
export interface DlqReference {
  cdcDlqReference: { topic: string; partition: number; offset: string; bytes: number; keyBytes: number }
  preview: string
}

/**
 * The DLQ copy as it will fit into `maxBytes`: unchanged when it does; else the value (and, if even that is not
 * enough, the key and the original's own headers) replaced by a reference to the original's position, which stays
 * readable in its topic for the topic's retention. The DLQ headers always survive.
 */
export function fitted(copy: OutMessage, maxBytes: number): OutMessage {
  if (recordBytes(copy) <= maxBytes) return copy
  const h = copy.headers ?? {}
  const value = copy.value === null ? '' : copy.value.toString()
  const reference: DlqReference = {
    cdcDlqReference: {
      topic: h[DlqHeaders.topic] ?? '',
      partition: Number(h[DlqHeaders.partition] ?? -1),
      offset: h[DlqHeaders.offset] ?? '',
      bytes: copy.value === null ? 0 : Buffer.byteLength(copy.value),
      keyBytes: copy.key === null ? 0 : Buffer.byteLength(copy.key),
    },
    preview: value.slice(0, PREVIEW_CHARS),
  }
  const small: OutMessage = { ...copy, value: JSON.stringify(reference), headers: { ...h, [DlqHeaders.reference]: 'value' } }
  if (recordBytes(small) <= maxBytes) return small
  // A huge key or headers: keep only our own headers and a bounded key (parking and redrive go by the key, so it is
  // kept as long as it fits at all).
  const own = Object.fromEntries(Object.entries(h).filter(([k]) => OWN_HEADERS.has(k)))
  const key = copy.key !== null && Buffer.byteLength(copy.key) > maxBytes / 2 ? copy.key.slice(0, 256) : copy.key
  return { ...small, key, headers: { ...own, [DlqHeaders.reference]: key === copy.key ? 'value,headers' : 'value,headers,key' } }
}

/**
 * Sends DLQ copies so that every one of them is accepted: each fitted to its DLQ topic's max.message.bytes, in as many
 * requests as that limit takes. The limit is read once per topic.
 */
export class DeadLetterSender {
  private readonly limits = new Map<string, Promise<number>>()

  constructor(
    private readonly producer: Producer,
    private readonly kafka: Pick<KafkaClient, 'maxMessageBytes'>,
  ) {}

  async send(copies: OutMessage[]): Promise<void> {
    if (copies.length === 0) return
    const topics = [...new Set(copies.map((c) => c.topic))]
    const limits = new Map(await Promise.all(topics.map(async (t) => [t, await this.limit(t)] as const)))
    // Leave room for the record batch framing; the smallest limit bounds every request.
    const maxBytes = Math.min(...limits.values()) - 128
    await this.producer.send(
      copies.map((c) => fitted(c, limits.get(c.topic)! - 128)),
      { maxBytes },
    )
  }

  private limit(topic: string): Promise<number> {
    let limit = this.limits.get(topic)
    if (!limit) {
      limit = this.kafka.maxMessageBytes(topic)
      this.limits.set(topic, limit)
      limit.catch(() => this.limits.delete(topic))
    }
    return limit
  }
}
