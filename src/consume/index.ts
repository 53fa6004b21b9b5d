// `cdc consume`: a consumer group (manual commits, read_committed) writing each partition batch into the MongoDB
// history and read model; poison messages go to `<topic>.dlq`. The offset of a batch is committed only after MongoDB
// acknowledged its writes and Kafka its DLQ copies, so a crash anywhere means redelivery, which the writes absorb.
import type { Consumer, PartitionBatch } from '../clients/kafka.ts'
import type { Store } from '../clients/mongo.ts'
import { dlqTopic } from '../events.ts'
import type { Role, Runtime } from '../runtime.ts'
import { consumedTables, discoverTopics, perTypeTopics } from '../topics.ts'
import { BatchMemory, deadLetterAlone, processBatch, type BatchContext } from './batch.ts'
import { DeadLetterSender } from './dlq.ts'
import { Gaps } from './gaps.ts'
import { ensureHistoryIndexes } from './history.ts'
import * as metrics from './metrics.ts'
import { startOutcomeLog } from './outcomes.ts'
import { FencedError, Ownership } from './ownership.ts'
import { processUnderPolicy, retrying } from './retry.ts'
import { StateWriter, ensureStateIndexes } from './state.ts'
import { redrivenCount } from '../redrive/ledger.ts'

const GAP_SWEEP_MS = 1_000
const LAG_EVERY_MS = 10_000
/** Under a `{type}` template, how often the broker's topic list is read for topics of new event types. */
const TOPIC_DISCOVERY_MS = 3_000
/**
 * How long stop() lets the batches in hand finish (and commit) before it leaves them behind: a batch on a slow or hung
 * MongoDB can take several operation timeouts, far beyond the 15 s shutdown budget. A batch left behind is not
 * committed, so the partition's next owner reads it again and the idempotent writes absorb what it did.
 */
const STOP_GRACE_MS = 5_000

/** What a test harness may pass in: fault injection through the role's dependencies, never through product config. */
export interface ConsumerHooks {
  /** Runs after a batch's writes succeeded and before its offset is committed (the window exactly-once must survive). */
  afterWrite?: (batch: PartitionBatch) => void | Promise<void>
}

export async function startConsumer(rt: Runtime, hooks: ConsumerHooks = {}): Promise<Role> {
  const { config } = rt
  const log = rt.log.child({ role: 'consume' })
  const groupId = config.consume.groupId
  let stopping = false
  let abandon!: () => void
  const abandoned = new Promise<false>((resolve) => (abandon = () => resolve(false)))
  const patiently = <T>(what: string, fn: () => Promise<T>) =>
    retrying(fn, {
      maxMs: config.consume.retryMaxMs,
      stopped: () => stopping,
      onError: (error, delayMs) => log.warn(`${what} failed; retrying`, { error, delayMs }),
    })

  const kafka = rt.kafka()
  const store = await rt.mongo()
  const gaps = new Gaps(store)
  const state = new StateWriter(store, gaps, log)
  const ownership = new Ownership(store, gaps, groupId, log)
  const producer = await patiently('connecting the DLQ producer', () => kafka.producer())
  const stopOutcomes = await patiently('preparing the outcome log', () => startOutcomeLog(store, config, log))
  const dlq = new DeadLetterSender(producer, kafka)
  /** What every batch shares; each batch adds its partition's parks and state writer (see processWithRetry). */
  const shared: Omit<BatchContext, 'parking' | 'state'> = { store, dlq, tables: new Set(), groupId, log, outcomes: config.consume.outcomes }
  let consumer: Consumer | undefined
  let topics: string[] = []

  /**
   * Reads the topics of `tables` (the tracked set, live): topics and indexes first, then the tables are allowed, then
   * the subscription follows. Before anything is tracked there is nothing to subscribe to, and that is fine.
   */
  const follow = async (tables: string[]) => {
    const next = await patiently('listing topics', () => discoverTopics(config, kafka, tables))
    const known = new Set(shared.tables)
    if (next.length === topics.length && next.every((t) => topics.includes(t)) && tables.every((t) => known.has(t))) return
    await patiently('creating topics', () =>
      kafka.ensureTopics(
        [...next, ...next.map(dlqTopic)].map((topic) => ({
          topic,
          partitions: config.kafka.partitions,
          replicationFactor: config.kafka.replicationFactor,
        })),
      ),
    )
    await patiently('creating indexes', async () => {
      const fresh = tables.filter((t) => !known.has(t))
      await ensureHistoryIndexes(store, fresh)
      await ensureStateIndexes(store, fresh)
    })
    shared.tables = new Set(tables)
    if (stopping || next.length === 0) return
    if (consumer) {
      if (next.length !== topics.length || !next.every((t) => topics.includes(t))) {
        log.info('subscribing to the tracked set', { topics: next })
        topics = next
        await consumer.subscribe(next)
      }
      return
    }
    topics = next
    // ~1 MiB per partition fetch keeps a batch well inside the session timeout on a slow MongoDB.
    // Subscribing right after the topics were created can fail while their leaders settle (fresh broker): retry.
    consumer = await patiently('subscribing', () =>
      kafka.consumer({
        groupId,
        topics: next,
        partitionsConsumedConcurrently: config.kafka.partitions,
        maxBytesPerPartition: 1024 * 1024,
        onAssigned: (assigned, generation) => ownership.onAssigned(assigned, generation),
        onRevoked: () => ownership.onRevoked(),
      }),
    )
    void consumer.run(handle).catch((error) => log.error('consumer stopped', { error }))
    log.info('consuming', { topics: next, groupId })
  }
  // One change at a time, in order (each step retries until it succeeds or the consumer stops).
  let following: Promise<void> = Promise.resolve()
  const followTracked = () => {
    following = following
      .then(() => (stopping ? undefined : follow(consumedTables(config, rt.tracked().list()))))
      .catch((error) => log.warn('following the tracked tables failed', { error }))
    return following
  }

  /** Whether MongoDB and Kafka answer: a batch failing while one of them does not is stalled, not isolated. */
  const reachable = async () => {
    const probe = (p: Promise<unknown>) =>
      Promise.race([p.then(() => true), Bun.sleep(5000).then(() => false)]).catch(() => false)
    const [m, k] = await Promise.all([probe(store.ping()), probe(kafka.ping())])
    return m && k
  }

  /** Processes a batch until every message is stored or dead-lettered; false when stopping or revoked meanwhile. */
  const processWithRetry = async (batch: PartitionBatch): Promise<boolean> => {
    // The partition's park state, claimed for this assignment (null: the batch belongs to an older one).
    const owned = await ownership.acquire(batch.topic, batch.partition, batch.generation).catch((error) => {
      log.warn('claiming the partition failed; the batch will be fetched again', { topic: batch.topic, partition: batch.partition, error })
      return null
    })
    if (!owned) return false
    const ctx: BatchContext = { ...shared, parking: owned.parking, state: state.at(batch) }
    // Another process claimed the partition since: stop at once, store and dead-letter nothing more.
    let fenced = false
    const noticeFence = (error: unknown) => {
      if (!(error instanceof FencedError)) return
      fenced = true
      metrics.fenced.inc()
      log.warn('partition taken over by another consumer; batch dropped', { topic: batch.topic, partition: batch.partition, error })
    }
    // One memory per batch: what an attempt wrote, a later attempt (or a half of it) counts once.
    const memory = new BatchMemory()
    return processUnderPolicy(
      {
        run: async (messages) => {
          try {
            // Checked right before anything is stored (and again before parks change).
            await owned.fence()
            const outcome = await processBatch(ctx, messages, memory)
            log.debug('batch written', { topic: batch.topic, partition: batch.partition, ...outcome })
          } catch (error) {
            noticeFence(error)
            throw error
          }
        },
        deadLetter: (message, error) => deadLetterAlone(ctx, message, error),
        reachable,
        alive: () => !stopping && !fenced && batch.isRunning(),
        pause: (ms) => pause(ms, batch),
        attempts: config.consume.batchAttempts,
        retryMaxMs: config.consume.retryMaxMs,
        log,
        where: { topic: batch.topic, partition: batch.partition },
      },
      batch.messages,
    )
  }

  const handle = async (batch: PartitionBatch) => {
    const last = batch.messages.at(-1)
    if (stopping) return false
    if (!last) return
    const started = performance.now()
    // Keep the group membership while MongoDB works: a batch on a slow server can outlast the session timeout.
    const beat = setInterval(() => void batch.heartbeat().catch(() => {}), 1000)
    try {
      if (!(await Promise.race([processWithRetry(batch), abandoned]))) {
        // Not processed: kafkajs fetches it again. Still ours by kafkajs but not by the partition's claim (fenced, or the
        // claim could not be read): wait a little, not in a tight loop, until the group moves it or the claim returns.
        if (!stopping && batch.isRunning()) await pause(1000, batch)
        return false
      }
    } finally {
      clearInterval(beat)
    }
    await hooks.afterWrite?.(batch)
    // Revoked meanwhile: the new owner re-reads from the committed offset, and the writes absorb it.
    if (!batch.isRunning()) return
    try {
      await consumer!.commit([{ topic: batch.topic, partition: batch.partition, offset: String(Number(last.offset) + 1) }])
    } catch (error) {
      // The writes are done, so a lost commit only means redelivery (absorbed by the idempotent writes); kafkajs
      // rejoins on its own when this member was dropped from the group. Throwing would stop the consumer for good.
      log.warn('offset commit failed; the batch may be delivered again', { topic: batch.topic, partition: batch.partition, error })
      return
    }
    metrics.batches.inc()
    metrics.batchSeconds.observe((performance.now() - started) / 1000)
  }

  const tracked = rt.tracked()
  await tracked.refresh().catch((error) => log.warn('reading the tracked tables failed', { error }))
  await follow(consumedTables(config, tracked.list()))
  const unwatch = config.consume.tables.length > 0 ? () => {} : tracked.onChange(() => void followTracked())
  if (topics.length === 0) log.info('nothing to consume yet: waiting for a table to be tracked', { groupId })
  // A {type} template gives each event type its own topic, made by the relay when that type first occurs: follow them
  // as they appear (a new topic is read from its beginning). One look at a time; a slow one skips the next ticks.
  let discovering = false
  const discovery = perTypeTopics(config)
    ? setInterval(() => {
        if (discovering || stopping) return
        discovering = true
        void followTracked().finally(() => (discovering = false))
      }, TOPIC_DISCOVERY_MS)
    : undefined

  // Gaps close when the missing version arrives in a batch, or here (e.g. it came through another topic or process):
  // only gaps of owned partitions, each on its own backoff.
  let sweeping = false
  const sweep = setInterval(async () => {
    if (sweeping) return
    sweeping = true
    try {
      await ownership.loadGaps()
      for (const { doc, place } of gaps.due()) {
        if (stopping) break
        if (ownership.owns(place.topic, place.partition)) await state.recheck(doc, place)
      }
    } catch (error) {
      log.warn('gap sweep failed', { error })
    } finally {
      sweeping = false
    }
  }, GAP_SWEEP_MS)

  const observe = setInterval(() => {
    observeLag(rt, store, groupId, topics).catch((error) => log.debug('lag probe failed', { error }))
  }, LAG_EVERY_MS)

  return {
    name: 'consume',
    async stop() {
      stopping = true
      unwatch()
      clearInterval(discovery)
      await following
      clearInterval(sweep)
      clearInterval(observe)
      stopOutcomes()
      const grace = setTimeout(abandon, STOP_GRACE_MS)
      try {
        await consumer?.stop()
      } finally {
        clearTimeout(grace)
      }
      await producer.disconnect().catch(() => {})
    },
  }
}

/** Sleep in short steps, heart-beating so the group keeps the partition while we wait. */
async function pause(ms: number, batch: PartitionBatch) {
  const until = Date.now() + ms
  while (Date.now() < until && batch.isRunning()) {
    await batch.heartbeat().catch(() => {})
    await Bun.sleep(Math.min(1000, until - Date.now()))
  }
}

async function observeLag(rt: Runtime, store: Store, groupId: string, topics: string[]) {
  const kafka = rt.kafka()
  for (const topic of topics) {
    for (const p of await kafka.lag(groupId, topic)) metrics.lag.set(Math.max(0, p.end - p.committed), { topic, partition: p.partition })
    const dlq = dlqTopic(topic)
    const size = (await kafka.offsets(dlq)).reduce((n, p) => n + p.high - p.low, 0)
    // A counter, not a count: FerretDB counts by reading the whole collection.
    const redriven = await redrivenCount(store, dlq)
    metrics.dlqDepth.set(Math.max(0, size - redriven), { topic: dlq })
  }
}
