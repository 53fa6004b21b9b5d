// What the consumer does when a batch fails (docs/failures.md): wait out an unreachable server however long it takes
// (visibly: cdc_consume_stalled), retry a timeout or a collection swapped under it a bounded number of times, and
// otherwise narrow the failure down to the message(s) causing it and dead-letter those, so that one message never
// holds its partition.
import type { InMessage } from '../clients/kafka.ts'
import { StoreError } from '../clients/mongo.ts'
import type { Logger } from '../log.ts'
import * as metrics from './metrics.ts'

export function backoffMs(attempt: number, maxMs: number): number {
  const base = Math.min(maxMs, 100 * 2 ** Math.min(attempt, 20))
  return Math.round(base / 2 + (Math.random() * base) / 2)
}

/**
 * - `unreachable`: a server did not answer (MongoDB or Kafka down, a wedged client): not the messages' fault.
 * - `timeout`: the server answers but the operation ran out of time: may pass, a few tries.
 * - `conflict`: a collection was dropped or renamed under the write (a replay's swap): passes on retry, a few tries.
 * - `other`: a rejection or an unknown error: retrying the same messages is not expected to help.
 */
export type FailureKind = 'unreachable' | 'timeout' | 'conflict' | 'other'

export function failureKind(error: unknown): FailureKind {
  if (error instanceof StoreError) return error.kind === 'rejected' || error.kind === 'unknown' ? 'other' : error.kind
  // kafkajs marks broker and network trouble as retriable, also inside the error its own retries gave up with.
  for (let e = error as { retriable?: boolean; name?: string; originalError?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; depth++) {
    if (e.name === 'KafkaJSRequestTimeoutError') return 'timeout'
    if (e.retriable === true || e.name === 'KafkaJSConnectionError' || e.name === 'KafkaJSBrokerNotFound') return 'unreachable'
    e = (e.originalError ?? e.cause) as typeof e
  }
  return 'other'
}

/** Retry `fn` until it succeeds or `stopped()` says to give up (then the last error is thrown). */
export async function retrying<T>(
  fn: () => Promise<T>,
  options: { maxMs: number; stopped: () => boolean; onError: (error: unknown, delayMs: number) => void },
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn()
    } catch (error) {
      if (options.stopped()) throw error
      const delay = backoffMs(attempt, options.maxMs)
      options.onError(error, delay)
      await Bun.sleep(delay)
    }
  }
}

export interface FailurePolicy {
  /** Processes the messages (all of them or none: it throws on failure). */
  run(messages: InMessage[]): Promise<void>
  /** Dead-letters one message with the error that isolated it. */
  deadLetter(message: InMessage, error: string): Promise<void>
  /** Whether MongoDB and Kafka answer right now (a failure while they do is not theirs). */
  reachable(): Promise<boolean>
  /** False once the consumer stops or loses the partition: give up without committing. */
  alive(): boolean
  /** Waits, keeping the partition (heart-beating). */
  pause(ms: number): Promise<void>
  /** Tries per batch before a timeout or conflict counts as the messages' (consume.batchAttempts). */
  attempts: number
  retryMaxMs: number
  log: Logger
  where: { topic: string; partition: number }
}

/**
 * Processes a batch under the failure taxonomy; resolves true once every message is stored or dead-lettered, false
 * when the consumer stops or loses the partition meanwhile (nothing is then committed, so nothing is lost).
 *
 * A failure while MongoDB or Kafka does not answer is a stall: waited out with backoff, as long as it lasts, with
 * cdc_consume_stalled = 1 for the partition. A timeout or conflict is retried `attempts` times. After that, or at once
 * for any other failure, the batch is halved, in order, each half tried once, until single messages fail: those go to
 * the DLQ with their error. Halves run one after the other, so a dead-lettered message parks its key before its followers.
 */
export async function processUnderPolicy(policy: FailurePolicy, messages: InMessage[]): Promise<boolean> {
  const labels = { topic: policy.where.topic, partition: String(policy.where.partition) }
  let stalls = 0
  let stalled = false
  const setStalled = (on: boolean, error?: unknown) => {
    if (on === stalled) return
    stalled = on
    metrics.stalled.set(on ? 1 : 0, labels)
    if (on) policy.log.error('consumer stalled: a server does not answer; waiting, nothing is skipped', { ...policy.where, error })
    else policy.log.info('consumer resumed', policy.where)
  }

  /** Runs until done; `tries` attempts (for timeouts and conflicts) before isolating. */
  const attempt = async (part: InMessage[], tries: number): Promise<boolean> => {
    for (let failures = 0; ; ) {
      let error: unknown
      try {
        await policy.run(part)
        setStalled(false)
        return true
      } catch (e) {
        error = e
      }
      if (!policy.alive()) return false
      let kind = failureKind(error)
      // Whatever failed, a server that does not answer a ping is the reason: nothing to blame on the messages.
      if (kind !== 'unreachable' && !(await policy.reachable())) kind = 'unreachable'
      metrics.retries.inc({ kind })
      if (kind === 'unreachable') {
        setStalled(true, error)
        const delayMs = backoffMs(stalls++, policy.retryMaxMs)
        policy.log.warn('batch failed; a server is unreachable, retrying', { ...policy.where, firstOffset: part[0]!.offset, error, delayMs })
        await policy.pause(delayMs)
        if (!policy.alive()) return false
        continue
      }
      setStalled(false)
      stalls = 0
      failures++
      if ((kind === 'timeout' || kind === 'conflict') && failures < tries) {
        const delayMs = backoffMs(failures, policy.retryMaxMs)
        policy.log.warn('batch failed transiently; retrying', { ...policy.where, firstOffset: part[0]!.offset, kind, error, attempt: failures, delayMs })
        await policy.pause(delayMs)
        if (!policy.alive()) return false
        continue
      }
      if (part.length === 1) return deadLetter(part[0]!, error)
      policy.log.warn('batch keeps failing; isolating the failing messages', {
        ...policy.where,
        firstOffset: part[0]!.offset,
        messages: part.length,
        kind,
        error,
      })
      // Halves get one try each (a poison message is found fast), but a single message gets every try before the DLQ:
      // on an overloaded server a big batch times out where its messages alone go through after a retry or two (the
      // 100,000-event chaos run narrowed batches that were only slow).
      const half = Math.ceil(part.length / 2)
      const next = (p: InMessage[]) => attempt(p, p.length === 1 ? Math.max(1, policy.attempts) : 1)
      return (await next(part.slice(0, half))) && next(part.slice(half))
    }
  }

  /** The DLQ copy must land before the offset moves on: a DLQ that cannot take it is a stall, never a skip. */
  const deadLetter = async (message: InMessage, error: unknown): Promise<boolean> => {
    const text = `failed in isolation (${failureKind(error)}): ${(error as Error)?.message ?? String(error)}`
    for (let n = 0; ; n++) {
      try {
        await policy.deadLetter(message, text)
        metrics.isolated.inc({ topic: message.topic })
        setStalled(false)
        return true
      } catch (e) {
        if (!policy.alive()) return false
        setStalled(true, e)
        await policy.pause(backoffMs(n, policy.retryMaxMs))
        if (!policy.alive()) return false
      }
    }
  }

  try {
    return await attempt(messages, Math.max(1, policy.attempts))
  } finally {
    setStalled(false)
  }
}
