// Capped exponential backoff with jitter, for failures that may pass (MongoDB down, Kafka unavailable).
import { StoreError } from '../clients/mongo.ts'

export function backoffMs(attempt: number, maxMs: number): number {
  const base = Math.min(maxMs, 100 * 2 ** Math.min(attempt, 20))
  return Math.round(base / 2 + (Math.random() * base) / 2)
}

/** Whether an error that escaped a batch is one that retrying is expected to fix (for logs and metrics). */
export function isTransient(error: unknown): boolean {
  if (error instanceof StoreError) return error.transient
  // kafkajs marks broker/network trouble as retriable.
  return (error as { retriable?: boolean }).retriable === true
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
