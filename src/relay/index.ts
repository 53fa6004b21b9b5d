// `cdc relay`: one leader (advisory lock) publishes captured events to Kafka, in poll mode (outbox + NOTIFY) or wal
// mode (logical replication slot); standbys wait for the lock and take over when the leader dies or loses it.
import slotLagSql from '../../sql/relay/slot-lag.sql' with { type: 'text' }
import { ConfigError } from '../config.ts'
import type { Role, Runtime } from '../runtime.ts'
import { Backoff } from './backoff.ts'
import { acquireLeadership } from './leader.ts'
import { relayMetrics } from './metrics.ts'
import { runPoll, type RelaySession } from './poll.ts'
import { createPublisher } from './publish.ts'
import { runLogical } from './logical.ts'
import { runWal } from './wal.ts'

const STATUS_LOG_MS = 30_000
const SLOT_SAMPLE_MS = 5_000

async function sampleSlot(rt: Runtime) {
  const slot = rt.config.relay.slot
  const [row] = await rt.relayDb().query<{ bytes: number | null; active: boolean }>(slotLagSql, [slot])
  relayMetrics.slotActive.set(row?.active ? 1 : 0, { slot })
  if (row?.bytes != null) relayMetrics.slotLagBytes.set(row.bytes, { slot })
}

export async function startRelay(rt: Runtime, options: { mode?: 'poll' | 'wal' } = {}): Promise<Role> {
  // Logical capture has no outbox and no emitted envelopes: its relay decodes the row changes themselves.
  const mode = rt.config.capture.mode === 'logical' ? 'logical' : (options.mode ?? rt.config.relay.mode)
  if (mode === 'poll' && rt.config.capture.mode === 'emit') {
    // Emit mode writes no outbox rows: a poll relay would publish nothing, silently.
    throw new ConfigError('relay', ['relay.mode: capture.mode "emit" needs relay.mode "wal" (or --mode wal)'])
  }
  const log = rt.log.child({ role: 'relay', mode })
  const stop = new AbortController()
  relayMetrics.leader.set(0)

  const loop = async () => {
    const backoff = new Backoff(rt.config.relay.retryMaxMs)
    while (!stop.signal.aborted) {
      const leader = await acquireLeadership(
        { url: rt.config.postgres.url, ssl: rt.security.postgres, log, retryMaxMs: rt.config.relay.retryMaxMs },
        stop.signal,
      )
      if (!leader) break
      relayMetrics.leader.set(1)
      // Series exist from the start (wal mode sets them only once something flows): an alert needs a value to read.
      if (!relayMetrics.backlog.has({ mode })) {
        relayMetrics.backlog.set(0, { mode })
        relayMetrics.lag.set(0, { mode })
      }
      log.info('relay is the leader', { transactionalId: rt.config.relay.transactionalId })
      const session = AbortSignal.any([stop.signal, leader.signal])
      const publisher = createPublisher(rt, log, mode)
      const s: RelaySession = { rt, log, leader, publisher, signal: session }
      try {
        await (mode === 'logical' ? runLogical(s) : mode === 'wal' ? runWal(s) : runPoll(s))
      } catch (error) {
        log.error('relay session failed; restarting it', { error })
        await backoff.wait(stop.signal)
      } finally {
        relayMetrics.leader.set(0)
        await publisher.close()
        await leader.release()
      }
      if (!stop.signal.aborted) log.warn('relay stepped down; waiting for the leadership lock again')
    }
  }

  log.info('relay starting', { transactionalId: rt.config.relay.transactionalId })
  const done = loop()
  // The same figures as the metrics, in the log, for deployments without a Prometheus scraper.
  const status = setInterval(() => {
    if (relayMetrics.leader.get() !== 1) return log.info('relay status', { leader: false })
    log.info('relay status', {
      leader: true,
      backlog: relayMetrics.backlog.get({ mode }),
      lagSeconds: relayMetrics.lag.get({ mode }),
      publishedTotal: relayMetrics.published.get({ mode }),
    })
  }, STATUS_LOG_MS)
  // Every relay of a wal or logical pipeline, standbys included, reports the slot: WAL piling up is the alert that matters most.
  const slot = mode !== 'poll' ? setInterval(() => void sampleSlot(rt).catch((error) => log.debug('slot probe failed', { error })), SLOT_SAMPLE_MS) : undefined
  return {
    name: 'relay',
    async stop() {
      clearInterval(slot)
      clearInterval(status)
      stop.abort()
      await done
      log.info('relay stopped')
    },
  }
}
