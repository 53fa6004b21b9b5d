// The Kafka side of the relay: builds the outgoing message (the only place), creates topics, and publishes one batch
// per Kafka transaction with the leadership checked right before the commit.
import type { OpenTransaction, OutMessage, TransactionalProducer } from '../clients/kafka.ts'
import type { Config } from '../config.ts'
import { EventHeaders, dlqTopic } from '../events.ts'
import type { Logger } from '../log.ts'
import type { Runtime } from '../runtime.ts'
import { topicFor } from '../topics.ts'
import { relayMetrics } from './metrics.ts'
import { withTxSizes } from './tx-size.ts'

/** One captured event as the relay sees it: routing fields plus the envelope JSON text (the Kafka value). */
export interface Outgoing {
  eventId: string
  aggregateType: string
  aggregateId: string
  version: number
  type: string
  /** The complete envelope, as JSON text. */
  value: string
}

/** An event as the relay reads it from cdc.event_store (sql/relay/fetch-batch.sql, events-by-id.sql). */
export interface EventRow {
  event_id: string
  aggregate_type: string
  aggregate_id: string
  version: number
  type: string
  payload: string
}

export function fromEventRow(r: EventRow): Outgoing {
  return { eventId: r.event_id, aggregateType: r.aggregate_type, aggregateId: r.aggregate_id, version: r.version, type: r.type, value: r.payload }
}

export function toMessage(config: Config, event: Outgoing): OutMessage {
  return {
    topic: topicFor(config, event.aggregateType, event.type),
    key: event.aggregateId,
    value: event.value,
    headers: {
      [EventHeaders.id]: event.eventId,
      [EventHeaders.type]: event.type,
      [EventHeaders.version]: String(event.version),
    },
  }
}

/**
 * Topics known up front: each tracked table's template topic (capture.tracked and the live tracked set), the per-type
 * topics, and the .dlq of each; a table's topic is also made with its first event.
 */
export function upfrontTopics(config: Config, tracked: readonly string[]): string[] {
  const topics = new Set<string>()
  if (!config.kafka.topicTemplate.includes('{type}')) {
    for (const table of new Set([...config.capture.tracked, ...tracked])) topics.add(topicFor(config, table, ''))
  }
  for (const topic of Object.values(config.kafka.topics)) topics.add(topic)
  return [...topics].flatMap((t) => [t, dlqTopic(t)])
}

export interface Publisher {
  /**
   * Publishes `events` (whole source transactions: their tx.size is counted here) in one Kafka transaction; resolves
   * once committed. Throws (nothing committed) on failure.
   */
  publish(events: Outgoing[], beforeCommit: () => Promise<void>): Promise<void>
  /**
   * One Kafka transaction sent in parts (a large source transaction); any failure aborts it all. Its events carry no
   * tx.size: the first parts are sent before the transaction's end is decoded.
   */
  begin(): Promise<PartsPublisher>
  close(): Promise<void>
}

export interface PartsPublisher {
  send(events: Outgoing[]): Promise<void>
  commit(beforeCommit: () => Promise<void>): Promise<void>
  abort(): Promise<void>
}

export function createPublisher(rt: Runtime, log: Logger, mode: string): Publisher {
  const config = rt.config
  const known = new Set<string>()
  let producer: TransactionalProducer | undefined

  const ensure = async (topics: Iterable<string>) => {
    const wanted = new Set([...topics].flatMap((t) => (t.endsWith('.dlq') ? [t] : [t, dlqTopic(t)])))
    const specs = [...wanted].filter((t) => !known.has(t))
    if (specs.length === 0) return
    await rt.kafka().ensureTopics(
      specs.map((topic) => ({ topic, partitions: config.kafka.partitions, replicationFactor: config.kafka.replicationFactor })),
    )
    for (const t of specs) known.add(t)
  }

  const drop = async () => {
    const p = producer
    producer = undefined
    await p?.disconnect().catch(() => {})
  }

  const producerFor = async (messages: OutMessage[]) => {
    const tracked = rt.tracked().list().map((t) => t.aggregateType)
    await ensure([...upfrontTopics(config, tracked), ...messages.map((m) => m.topic)])
    // Created only by a leader: initialising the transactional id fences any older producer with the same id.
    producer ??= await rt.kafka().transactionalProducer(config.relay.transactionalId, { transactionTimeoutMs: config.relay.transactionTimeoutMs })
    return producer
  }
  const published = (events: number, started: number) => {
    relayMetrics.published.inc({ mode }, events)
    relayMetrics.batches.inc({ mode })
    relayMetrics.batchSeconds.observe((performance.now() - started) / 1000, { mode })
  }
  // A failed or fenced transactional producer is not reusable: start from a fresh one next time.
  const failed = async (error: unknown): Promise<never> => {
    await drop()
    throw error
  }

  return {
    async publish(events, beforeCommit) {
      if (events.length === 0) return
      const started = performance.now()
      const messages = withTxSizes(events).map((e) => toMessage(config, e))
      await producerFor(messages)
        .then((p) => p.sendInTransaction(messages, beforeCommit))
        .catch(failed)
      published(events.length, started)
      log.debug('published', { events: events.length, first: events[0]!.eventId, last: events.at(-1)!.eventId })
    },
    async begin() {
      const started = performance.now()
      let tx: OpenTransaction | undefined
      let sent = 0
      return {
        async send(events) {
          if (events.length === 0) return
          const messages = events.map((e) => toMessage(config, e))
          try {
            const p = await producerFor(messages)
            tx ??= await p.transaction()
            await tx.send(messages)
          } catch (error) {
            // (the aborted transaction stays this publisher's: a later send fails too, never starts a new one)
            await failed(error)
          }
          sent += events.length
        },
        async commit(beforeCommit) {
          if (!tx) return
          await tx.commit(beforeCommit).catch(failed)
          published(sent, started)
          log.debug('published in parts', { events: sent })
        },
        async abort() {
          await tx?.abort()
        },
      }
    },
    close: drop,
  }
}
