// Capped exponential backoff with jitter, and a sleep that a stop (AbortSignal) cuts short.

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

export class Backoff {
  private attempt = 0
  constructor(
    private readonly maxMs: number,
    private readonly firstMs = 100,
  ) {}

  /** The delay before the next attempt: doubles per failure up to maxMs, with ±20 % jitter so relays do not align. */
  next(): number {
    const base = Math.min(this.maxMs, this.firstMs * 2 ** Math.min(this.attempt, 30))
    this.attempt++
    return Math.round(base * (0.8 + Math.random() * 0.4))
  }

  wait(signal?: AbortSignal): Promise<void> {
    return sleep(this.next(), signal)
  }

  reset() {
    this.attempt = 0
  }
}
