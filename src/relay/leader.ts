// Exactly one active relay per pipeline: the leader holds a session-level advisory lock on a connection of its own. The
// lock lives as long as that session does, so "the lock is still held" = "the same backend answers" (a pool would
// silently reconnect to a new session without the lock, hence the backend pid check).
//
// The pipeline is the database: every relay of a database reads the same cdc.outbox (poll mode deletes from it, every
// slot and publication streams its inserts), so two leaders would publish every event twice through two producers.
// The lock is therefore keyed on the database alone (advisory locks are scoped to it), whatever the transactional id,
// slot or publication: a relay configured with another transactional id becomes a standby, not a second leader.
import holderSql from '../../sql/relay/leader-holder.sql' with { type: 'text' }
import { connect, type Db } from '../clients/postgres.ts'
import type { PgSsl } from '../clients/security.ts'
import type { Logger } from '../log.ts'
import { Backoff, sleep } from './backoff.ts'

/** First key of the two-int advisory lock ('cdcr'), so our locks never collide with an application's single keys. */
const LOCK_CLASS = 0x63646372
/** Second key: the outbox pipeline of this database. */
const PIPELINE_KEY = 1
const TRY_LOCK = 'select pg_try_advisory_lock($1, $2) as locked, pg_backend_pid() as pid'
const PID = 'select pg_backend_pid() as pid'

export interface Leadership {
  /** Throws unless this process still holds the lock right now (run before each Kafka commit). */
  check(): Promise<void>
  /** Aborts when the lock is lost (connection gone, heartbeat failed) or leadership is released. */
  readonly signal: AbortSignal
  release(): Promise<void>
}

export interface LeaderOptions {
  url: string
  ssl?: PgSsl
  log: Logger
  retryMaxMs: number
  /** How often a standby retries and a leader proves its session is alive. */
  intervalMs?: number
  /** A heartbeat slower than this counts as a lost connection. */
  timeoutMs?: number
}

export class LeadershipLost extends Error {
  constructor(reason: string) {
    super(`relay leadership lost: ${reason}`)
    this.name = 'LeadershipLost'
  }
}

/** Waits until this process holds the lock (or `stop` aborts: then resolves undefined). */
export async function acquireLeadership(options: LeaderOptions, stop: AbortSignal): Promise<Leadership | undefined> {
  const intervalMs = options.intervalMs ?? 1000
  const timeoutMs = options.timeoutMs ?? 3000
  const backoff = new Backoff(options.retryMaxMs)
  let standbyLogged = false
  while (!stop.aborted) {
    const db = connect({ url: options.url, ssl: options.ssl, max: 1, name: 'cdc-relay-leader' })
    try {
      const [row] = await withTimeout(db.query<{ locked: boolean; pid: number }>(TRY_LOCK, [LOCK_CLASS, PIPELINE_KEY]), timeoutMs)
      if (row?.locked) return hold(db, row.pid, options, intervalMs, timeoutMs)
      if (!standbyLogged) {
        const [holder] = await db.query<{ pid: number; address: string | null }>(holderSql, [LOCK_CLASS, PIPELINE_KEY]).catch(() => [])
        options.log.info('relay standby: another relay leads this pipeline (same database); waiting for its lock', {
          leaderPid: holder?.pid,
          leaderAddress: holder?.address,
        })
      }
      standbyLogged = true
      await db.end(1)
      backoff.reset()
      await sleep(intervalMs, stop)
    } catch (error) {
      await db.end(1).catch(() => {})
      options.log.warn('relay leadership: PostgreSQL unavailable, retrying', { error })
      await backoff.wait(stop)
    }
  }
  return undefined
}

function hold(db: Db, pid: number, options: LeaderOptions, intervalMs: number, timeoutMs: number): Leadership {
  const lost = new AbortController()
  const verify = async () => {
    const [row] = await withTimeout(db.query<{ pid: number }>(PID), timeoutMs)
    if (row?.pid !== pid) throw new LeadershipLost('the lock session ended')
  }
  const lose = (reason: unknown) => {
    if (lost.signal.aborted) return
    options.log.warn('relay leadership lost', { error: reason })
    lost.abort(reason)
    void db.end(1).catch(() => {})
  }
  const heartbeat = setInterval(() => verify().catch(lose), intervalMs)
  lost.signal.addEventListener('abort', () => clearInterval(heartbeat), { once: true })
  return {
    signal: lost.signal,
    async check() {
      if (lost.signal.aborted) throw new LeadershipLost('already lost')
      try {
        await verify()
      } catch (error) {
        lose(error)
        throw error instanceof LeadershipLost ? error : new LeadershipLost((error as Error).message)
      }
    },
    async release() {
      if (lost.signal.aborted) return
      lost.abort(new LeadershipLost('released'))
      // Ending the session releases the lock.
      await db.end(1).catch(() => {})
    },
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from PostgreSQL within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
