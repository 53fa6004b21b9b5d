// Reads DLQ topics from their first to their current last message with a short-lived consumer (a fresh group that
// never commits), then stops: redrive and the DLQ listing are one-shot.
import type { InMessage } from '../clients/kafka.ts'
import type { Runtime } from '../runtime.ts'

const READ_TIMEOUT_MS = 60_000

export async function readTopics(rt: Runtime, topics: string[]): Promise<InMessage[]> {
  const kafka = rt.kafka()
  const existing = new Set(await kafka.listTopics())
  const ends = new Map<string, number>()
  for (const topic of topics.filter((t) => existing.has(t))) {
    for (const p of await kafka.offsets(topic)) if (p.high > p.low) ends.set(`${topic}:${p.partition}`, p.high)
  }
  if (ends.size === 0) return []
  const wanted = [...new Set([...ends.keys()].map((k) => k.slice(0, k.lastIndexOf(':'))))]
  const consumer = await kafka.consumer({
    groupId: `cdc-dlq-reader-${crypto.randomUUID()}`,
    topics: wanted,
    fromBeginning: true,
    partitionsConsumedConcurrently: 1,
  })
  const out: InMessage[] = []
  const pending = new Set(ends.keys())
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`reading the DLQ timed out after ${READ_TIMEOUT_MS} ms`)), READ_TIMEOUT_MS)
      consumer
        .run(async (batch) => {
          const id = `${batch.topic}:${batch.partition}`
          const end = ends.get(id) ?? 0
          for (const m of batch.messages) if (Number(m.offset) < end) out.push(m)
          const last = batch.messages.at(-1)
          if (last && Number(last.offset) + 1 >= end) pending.delete(id)
          if (pending.size === 0) {
            clearTimeout(timer)
            resolve()
          }
        })
        .catch(reject)
    })
  } finally {
    await consumer.stop().catch(() => {})
  }
  return out.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition || Number(a.offset) - Number(b.offset))
}

/**
 * One message by its position (a DLQ copy stored by reference points at its original, which stays in its topic for
 * the topic's retention); undefined when it is no longer there.
 */
export async function readAt(rt: Runtime, at: { topic: string; partition: number; offset: string }): Promise<InMessage | undefined> {
  const consumer = await rt.kafka().consumer({
    groupId: `cdc-dlq-reader-${crypto.randomUUID()}`,
    topics: [at.topic],
    fromBeginning: true,
    partitionsConsumedConcurrently: 1,
  })
  try {
    return await new Promise<InMessage | undefined>((resolve, reject) => {
      const timer = setTimeout(() => resolve(undefined), READ_TIMEOUT_MS)
      const done = (m: InMessage | undefined) => {
        clearTimeout(timer)
        resolve(m)
      }
      consumer
        .run(async (batch) => {
          if (batch.topic !== at.topic || batch.partition !== at.partition) return
          const found = batch.messages.find((m) => m.offset === at.offset)
          if (found) done(found)
          else if (batch.messages.some((m) => BigInt(m.offset) > BigInt(at.offset))) done(undefined)
        })
        .catch(reject)
      consumer.seek(at.topic, at.partition, at.offset)
    })
  } finally {
    await consumer.stop().catch(() => {})
  }
}
