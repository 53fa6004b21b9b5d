// The only module that imports kafkajs (unmaintained since 2023): the roles use the small interfaces below, so the
// client can be swapped without touching them.
import { ConfigResourceTypes, Kafka, logLevel, Partitioners, type Consumer as KConsumer, type PartitionMetadata, type Producer as KProducer } from 'kafkajs'
import type { Logger } from '../log.ts'
import type { KafkaSecurity } from './security.ts'

export interface OutMessage {
  topic: string
  /** null: no key (the partitioner spreads such messages); kept null, never turned into "". */
  key: string | null
  /** null: a tombstone. */
  value: string | Buffer | null
  headers?: Record<string, string>
  partition?: number
}

export interface InMessage {
  topic: string
  partition: number
  offset: string
  key: string | null
  value: Buffer | null
  headers: Record<string, string>
  timestamp: string
}

export interface Producer {
  /**
   * Idempotent (acks=all) send; resolves once the broker acknowledged every message. Sent in order, in as many requests
   * as it takes to keep each partition's part of one within `maxBytes` (estimated; default DEFAULT_MAX_SEND_BYTES): the
   * broker refuses a record batch larger than its max.message.bytes, and kafkajs puts all of one request's messages for
   * a partition into one batch. A single message larger than that still goes alone (and fails): callers that must
   * always succeed (the DLQ) shrink their messages first (see `recordBytes`).
   */
  send(messages: OutMessage[], options?: { maxBytes?: number }): Promise<void>
  disconnect(): Promise<void>
}

export interface TransactionalProducer {
  /**
   * All messages become visible to read_committed consumers together, or none do. `beforeCommit` runs after the
   * broker acknowledged the sends and before the commit: throwing there aborts (e.g. a relay that lost leadership).
   */
  sendInTransaction(messages: OutMessage[], beforeCommit?: () => Promise<void>): Promise<void>
  /** A transaction left open across several sends (a large source transaction published in parts). */
  transaction(): Promise<OpenTransaction>
  disconnect(): Promise<void>
}

export interface OpenTransaction {
  send(messages: OutMessage[]): Promise<void>
  /** `beforeCommit` as in sendInTransaction; a failed commit aborts. */
  commit(beforeCommit?: () => Promise<void>): Promise<void>
  abort(): Promise<void>
}

/** Handles one partition batch; false: not processed, fetch it again. */
export type BatchHandler = (batch: PartitionBatch) => Promise<boolean | void>

export interface PartitionBatch {
  topic: string
  partition: number
  messages: InMessage[]
  highWatermark: string
  /** Keep the group membership alive during long work. */
  heartbeat(): Promise<void>
  /** False once the consumer is stopping or the partition was revoked: stop and do not commit. */
  isRunning(): boolean
  /** The assignment this batch was fetched under (see ConsumerOptions.onAssigned). */
  generation: number
}

export interface Consumer {
  /**
   * Calls `onBatch` per partition batch. When it returns, the batch is done for this member (the next fetch starts
   * after it); when it throws, the batch is fetched again. Nothing is committed unless `commit` is called.
   */
  /**
   * `onBatch` resolves false for a batch it did not process (stopping, revoked, fenced): this member then fetches the
   * same messages again instead of moving past them.
   */
  run(onBatch: BatchHandler): Promise<void>
  /** Commits "next offset to read" per partition. */
  commit(offsets: { topic: string; partition: number; offset: string }[]): Promise<void>
  /** Go back to `offset` on the next fetch (after a failure, to re-read what was not committed). */
  seek(topic: string, partition: number, offset: string): void
  pause(topic: string, partitions: number[]): void
  resume(topic: string, partitions: number[]): void
  /**
   * Follow another set of topics (a table was tracked): the member is replaced by one subscribed to `topics`, as after
   * a stall; batches in hand finish first and uncommitted work is read again. Resolves once the new member runs.
   */
  subscribe(topics: string[]): Promise<void>
  stop(): Promise<void>
}

export interface ConsumerOptions {
  groupId: string
  topics: string[]
  fromBeginning?: boolean
  /** Default false: only committed transactions are read. */
  readUncommitted?: boolean
  maxBytesPerPartition?: number
  maxWaitTimeInMs?: number
  sessionTimeoutMs?: number
  partitionsConsumedConcurrently?: number
  /**
   * This member joined the group (again) and owns these partitions under a new `generation` (a local counter that
   * only grows): whatever it owned before may have had another owner meanwhile. Called before any batch of it.
   */
  onAssigned?: (assigned: { topic: string; partition: number }[], generation: number) => void
  /** A rebalance started (or the client crashed or was replaced): nothing is owned until the next onAssigned. */
  onRevoked?: () => void
}

export interface TopicSpec {
  topic: string
  partitions: number
  replicationFactor: number
}

export interface KafkaClient {
  producer(): Promise<Producer>
  /** `transactionTimeoutMs`: how long the broker lets a transaction stay open (its transaction.max.timeout.ms caps it). */
  transactionalProducer(transactionalId: string, options?: { transactionTimeoutMs?: number }): Promise<TransactionalProducer>
  consumer(options: ConsumerOptions): Promise<Consumer>
  /** Create the missing topics and wait for their leaders (kafkajs cannot subscribe to a missing topic in KRaft). */
  ensureTopics(topics: TopicSpec[]): Promise<void>
  listTopics(): Promise<string[]>
  /**
   * Committed offsets of a group and the topic's end offsets (the last stable offset: what read_committed can read; the
   * high watermark unless a transaction is open), so end − committed is the lag `kafka-consumer-groups` shows, 0 when
   * the group is caught up (commits include the transaction markers, see consumer()).
   */
  lag(groupId: string, topic: string): Promise<{ partition: number; committed: number; end: number }[]>
  /** First and next-to-write offset of each partition (a one-shot reader reads [low, high)). */
  offsets(topic: string): Promise<{ partition: number; low: number; high: number }[]>
  /** The largest record batch the broker accepts on `topic` (its max.message.bytes). */
  maxMessageBytes(topic: string): Promise<number>
  /** Reachability probe for /readyz. */
  ping(): Promise<void>
  close(): Promise<void>
}

/** Messages of a topic the group has not committed yet, from `lag()`'s partitions. */
export function messagesBehind(partitions: readonly { committed: number; end: number }[]): number {
  return partitions.reduce((n, p) => n + Math.max(0, p.end - p.committed), 0)
}

export interface KafkaOptions extends KafkaSecurity {
  brokers: string[]
  clientId: string
  log?: Logger
  /** Fail fast instead of kafkajs' long default retries (used by probes and tests). */
  connectionTimeoutMs?: number
}

/** How long ensureTopics waits for the partitions of a topic that exists to have leaders. */
const LEADERS_WAIT_MS = 15_000

/** The broker's default max.message.bytes (1 MiB + 12) less room for the record batch header. */
export const DEFAULT_MAX_SEND_BYTES = 1_000_000

type Bytes = string | Buffer | null | undefined
/** As encoded (kafkajs patched: lone surrogates as U+FFFD, which Bun's Buffer.byteLength may count a byte short). */
const utf8Bytes = (v: Bytes) => (v == null ? 0 : typeof v === 'string' ? Buffer.byteLength(v.isWellFormed() ? v : v.toWellFormed()) : v.length)
/** At least utf8Bytes, without encoding a string: UTF-8 takes at most 3 bytes per UTF-16 unit. */
const utf8BytesBound = (v: Bytes) => (v == null ? 0 : typeof v === 'string' ? v.length * 3 : v.length)

/**
 * An upper estimate of a message's size inside a record batch (record framing, varints, header framing): the value
 * measured by `value`, the key and headers by `rest`; with `utf8BytesBound`, a bound of that estimate that encodes
 * nothing.
 */
export function recordBytes(m: OutMessage, value: (v: Bytes) => number = utf8Bytes, rest = value): number {
  let bytes = 32 + rest(m.key) + value(m.value)
  for (const k in m.headers) bytes += 10 + rest(k) + rest(m.headers[k])
  return bytes
}

const keyPartitioner = Partitioners.DefaultPartitioner()
// For a keyed message the partitioner reads only how many partitions there are: one stand-in list per count.
const metadataByCount = new Map<number, PartitionMetadata[]>()

/** The partition kafkajs' default partitioner gives a keyed message in a topic of `count` partitions (murmur2). */
export function partitionOf(topic: string, key: string, count: number): number {
  let metadata = metadataByCount.get(count)
  if (!metadata) {
    metadata = Array.from({ length: count }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] }))
    metadataByCount.set(count, metadata)
  }
  return keyPartitioner({ topic, partitionMetadata: metadata, message: { key, value: null } })
}

/**
 * Consecutive runs of `messages` in which no partition's estimated bytes pass `maxBytes` (an oversized message alone).
 * `partitions` gives the topics' partition counts: a keyed message's partition is then known, and a request may carry
 * up to `maxBytes` for each partition. A message whose partition is not known counts against every partition.
 */
export function sendChunks(messages: OutMessage[], maxBytes: number, partitions: ReadonlyMap<string, number> = new Map()): OutMessage[][] {
  // Most batches fit whole even at 3 bytes per UTF-16 unit of every string: then no byte counting and no hashing (they
  // were a twentieth of the relay's CPU; kafkajs counts and hashes again when it encodes).
  let bound = 64
  for (const m of messages) if ((bound += recordBytes(m, utf8BytesBound)) > maxBytes) break
  if (bound <= maxBytes) return messages.length > 0 ? [messages] : []
  const chunks: OutMessage[][] = []
  let chunk: OutMessage[] = []
  // per partition (`topic|n`), and what messages of unknown partition add to all of them
  let bytes = new Map<string, number>()
  let everywhere = 64
  for (const m of messages) {
    // (the value counted exactly, the short key and headers bounded: one encoding per message, not one per string)
    const size = recordBytes(m, utf8Bytes, utf8BytesBound)
    const count = partitions.get(m.topic)
    // (kafkajs hashes the key again when it sends: its own partition count decides, this one only packs)
    const partition = m.partition ?? (m.key != null && count ? partitionOf(m.topic, m.key, count) : undefined)
    const at = partition === undefined ? undefined : `${m.topic}|${partition}`
    const fullest = at === undefined ? Math.max(0, ...bytes.values()) : (bytes.get(at) ?? 0)
    if (chunk.length > 0 && everywhere + fullest + size > maxBytes) {
      chunks.push(chunk)
      chunk = []
      bytes = new Map()
      everywhere = 64
    }
    chunk.push(m)
    if (at === undefined) everywhere += size
    else bytes.set(at, (bytes.get(at) ?? 0) + size)
  }
  if (chunk.length > 0) chunks.push(chunk)
  return chunks
}

/** How long a consumer's stop() waits for kafkajs to finish its batches and leave the group. */
const STOP_MS = 8_000

const toHeaders = (headers: Record<string, Buffer | string | (Buffer | string)[] | undefined> | undefined) => {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (v === undefined) continue
    out[k] = (Array.isArray(v) ? v[v.length - 1] : v)!.toString()
  }
  return out
}

export function createKafka(options: KafkaOptions): KafkaClient {
  const kafka = new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    ssl: options.ssl,
    sasl: options.sasl,
    connectionTimeout: options.connectionTimeoutMs ?? 3000,
    retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 5 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }) => {
        const { message, ...rest } = entry
        const fields = { component: 'kafkajs', error: rest.error, broker: rest.broker }
        if (level <= logLevel.ERROR) options.log?.warn(message, fields)
        else options.log?.debug(message, fields)
      },
  })
  const admin = kafka.admin()
  let adminConnected: Promise<void> | undefined
  const withAdmin = async () => {
    adminConnected ??= admin.connect().catch((error) => {
      adminConnected = undefined
      throw error
    })
    await adminConnected
    return admin
  }
  // Partition counts of the topics sent to, re-read after a minute (partitions can be added): sendChunks packs a
  // request by partition with them. Unknown (the metadata could not be read): the conservative packing.
  const partitionCounts = new Map<string, { count: number; at: number }>()
  const countsFor = async (messages: OutMessage[]): Promise<Map<string, number>> => {
    const topics = [...new Set(messages.map((m) => m.topic))]
    const stale = topics.filter((t) => !(Date.now() - (partitionCounts.get(t)?.at ?? 0) < 60_000))
    if (stale.length > 0) {
      try {
        const { topics: found } = await (await withAdmin()).fetchTopicMetadata({ topics: stale })
        for (const t of found) partitionCounts.set(t.name, { count: t.partitions.length, at: Date.now() })
      } catch {}
    }
    return new Map(topics.flatMap((t) => (partitionCounts.has(t) ? [[t, partitionCounts.get(t)!.count] as const] : [])))
  }
  const open: { disconnect(): Promise<void> }[] = []
  const track = <T extends { disconnect(): Promise<void> }>(client: T) => {
    open.push(client)
    return client
  }
  const toKafkaMessages = (messages: OutMessage[]) => {
    const byTopic = new Map<string, { key: string | null; value: string | Buffer | null; headers?: Record<string, string>; partition?: number }[]>()
    for (const m of messages) {
      let list = byTopic.get(m.topic)
      if (!list) byTopic.set(m.topic, (list = []))
      list.push({ key: m.key, value: m.value, headers: m.headers, partition: m.partition })
    }
    return [...byTopic].map(([topic, msgs]) => ({ topic, messages: msgs }))
  }

  return {
    async producer() {
      const p: KProducer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false })
      await p.connect()
      track(p)
      return {
        send: async (messages, options = {}) => {
          for (const chunk of sendChunks(messages, options.maxBytes ?? DEFAULT_MAX_SEND_BYTES, await countsFor(messages))) {
            await p.sendBatch({ topicMessages: toKafkaMessages(chunk), acks: -1 })
          }
        },
        disconnect: () => p.disconnect(),
      }
    },
    async transactionalProducer(transactionalId, options = {}) {
      const p: KProducer = kafka.producer({
        idempotent: true,
        transactionalId,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        transactionTimeout: options.transactionTimeoutMs ?? 60_000,
        // Short retries: a transaction that follows a commit at once met CONCURRENT_TRANSACTIONS while the broker
        // still wrote the commit's markers (a few ms), and kafkajs' 100 ms first retry capped back-to-back
        // transactions at a few per second (patches/: that answer is now asked again within kafkajs after 1, 2, 4 …
        // ms, and the transaction coordinator is looked up once, not before every request). Retries stay unlimited,
        // as kafkajs requires for an idempotent producer.
        retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 10, maxRetryTime: 2000 },
      })
      await p.connect()
      track(p)
      const transaction = async (): Promise<OpenTransaction> => {
        const tx = await p.transaction()
        const abort = () => tx.abort().catch(() => {})
        return {
          async send(messages) {
            try {
              // in requests the broker accepts (see Producer.send); a large source transaction would never go out
              for (const chunk of sendChunks(messages, DEFAULT_MAX_SEND_BYTES, await countsFor(messages))) {
                await tx.sendBatch({ topicMessages: toKafkaMessages(chunk), acks: -1 })
              }
            } catch (error) {
              await abort()
              throw error
            }
          },
          async commit(beforeCommit) {
            try {
              await beforeCommit?.()
              await tx.commit()
            } catch (error) {
              await abort()
              throw error
            }
          },
          abort,
        }
      }
      return {
        sendInTransaction: async (messages, beforeCommit) => {
          const tx = await transaction()
          await tx.send(messages)
          await tx.commit(beforeCommit)
        },
        transaction,
        disconnect: () => p.disconnect(),
      }
    },
    async consumer(o) {
      let stopped = false
      let topics = [...o.topics]
      const create = async () => {
        const c: KConsumer = kafka.consumer({
          groupId: o.groupId,
          readUncommitted: o.readUncommitted ?? false,
          maxBytesPerPartition: o.maxBytesPerPartition ?? 4 * 1024 * 1024,
          maxWaitTimeInMs: o.maxWaitTimeInMs ?? 100,
          sessionTimeout: o.sessionTimeoutMs ?? 10_000,
          heartbeatInterval: 1000,
          allowAutoTopicCreation: false,
          // kafkajs restarts a crashed consumer by itself, also after a crash during the final disconnect or after it
          // was replaced: that would bring back a group member nobody owns, holding partitions it never commits.
          retry: { restartOnFailure: async () => !stopped && c === current },
        })
        await c.connect()
        try {
          await c.subscribe({ topics, fromBeginning: o.fromBeginning ?? true })
        } catch (error) {
          await c.disconnect().catch(() => {})
          throw error
        }
        return c
      }
      let current = await create()
      let generation = 0
      let lastSign = Date.now()
      // A transactional producer ends every transaction with a control record (the commit marker) right after its
      // data. kafkajs hides it, so "last message + 1" would leave every caught-up partition one short of the high
      // watermark (lag 1 forever). Like the Java consumer, commit past the filtered records that close a batch.
      const fetched = new Map<string, { lastMessage: number; lastRecord: number }>()
      const committed = new Map<string, number>()
      const tp = (topic: string, partition: number) => `${topic}:${partition}`
      const commit = async (offsets: { topic: string; partition: number; offset: string }[]) => {
        const adjusted = offsets.map((o) => {
          const f = fetched.get(tp(o.topic, o.partition))
          const next = f && Number(o.offset) === f.lastMessage + 1 ? f.lastRecord + 1 : Number(o.offset)
          return { ...o, offset: String(next) }
        })
        await current.commitOffsets(adjusted)
        for (const o of adjusted) committed.set(tp(o.topic, o.partition), Number(o.offset))
      }
      let watchdog: ReturnType<typeof setInterval> | undefined
      let replacing: Promise<void> | undefined
      const retire = (c: KConsumer) => void c.disconnect().catch(() => {})
      track({ disconnect: () => current.disconnect() })
      const start = async (onBatch: BatchHandler) => {
        const c = current
        // Every fetch round (even an empty one) is a sign of life; a crash kafkajs will not restart is a stall.
        c.on(c.events.FETCH_START, () => (lastSign = Date.now()))
        c.on(c.events.HEARTBEAT, () => (lastSign = Date.now()))
        c.on(c.events.CRASH, (e) => {
          if (!e.payload.restart) lastSign = 0
          if (c === current) o.onRevoked?.()
        })
        // kafkajs (eager protocol) revokes everything when a rebalance starts and emits GROUP_JOIN with the new
        // assignment before it fetches again; it waits for the batches in hand before rejoining.
        c.on(c.events.REBALANCING, () => {
          if (c === current) o.onRevoked?.()
        })
        c.on(c.events.GROUP_JOIN, (e) => {
          // A replaced member that joined anyway (its disconnect failed while the broker was away, or it was still
          // joining): it would hold a share of the partitions and never commit them. It leaves.
          if (c !== current) return retire(c)
          generation++
          const assigned = Object.entries(e.payload.memberAssignment).flatMap(([topic, partitions]) =>
            (partitions as number[]).map((partition) => ({ topic, partition })),
          )
          o.onAssigned?.(assigned, generation)
        })
        // A fetch holding only filtered records (a marker that came alone, an aborted transaction) never reaches
        // onBatch; when everything before it is committed, commit past it too.
        c.on(c.events.END_BATCH_PROCESS, ({ payload }) => {
          if (stopped || payload.batchSize !== 0 || payload.firstOffset == null) return
          const k = tp(payload.topic, payload.partition)
          if (committed.get(k) !== Number(payload.firstOffset)) return
          const offset = String(Number(payload.lastOffset) + 1)
          void c
            .commitOffsets([{ topic: payload.topic, partition: payload.partition, offset }])
            .then(() => committed.set(k, Number(offset)))
            .catch((error) => options.log?.debug('committing past control records failed', { error }))
        })
        lastSign = Date.now()
        await c.run({
          autoCommit: false,
          // kafkajs fetches from the last resolved offset: resolving a batch the handler dropped (a rebalance or a
          // fence came first) would skip it for good once a later batch of the partition is committed.
          eachBatchAutoResolve: false,
          partitionsConsumedConcurrently: o.partitionsConsumedConcurrently ?? 1,
          eachBatch: async ({ batch, heartbeat, isRunning, isStale, resolveOffset }) => {
            if (stopped) return
            if (c !== current) return retire(c)
            lastSign = Date.now()
            const fetchedIn = generation
            const lastMessage = batch.messages.at(-1)
            if (lastMessage) {
              fetched.set(tp(batch.topic, batch.partition), { lastMessage: Number(lastMessage.offset), lastRecord: Number(batch.lastOffset()) })
            }
            const done = await onBatch({
              generation: fetchedIn,
              topic: batch.topic,
              partition: batch.partition,
              highWatermark: batch.highWatermark,
              heartbeat: async () => {
                lastSign = Date.now()
                await heartbeat()
              },
              isRunning: () => !stopped && isRunning() && !isStale() && c === current && fetchedIn === generation,
              messages: batch.messages.map((m) => ({
                topic: batch.topic,
                partition: batch.partition,
                offset: m.offset,
                key: m.key ? m.key.toString() : null,
                value: m.value,
                headers: toHeaders(m.headers),
                timestamp: m.timestamp,
              })),
            })
            if (done !== false) resolveOffset(batch.lastOffset())
            lastSign = Date.now()
          },
        })
      }
      let handler: BatchHandler | undefined
      /** A new kafkajs member in place of the current one (after a stall, or for another topic set). */
      const replace = (why: string) => {
        lastSign = Date.now()
        replacing = current
          .disconnect()
          .catch(() => {})
          .then(create)
          .then(async (c) => {
            if (stopped) return void (await c.disconnect().catch(() => {}))
            o.onRevoked?.()
            current = c
            // Not awaited: joining the group can take a session timeout, and stop() must not wait for it.
            if (handler) void start(handler).catch((error) => options.log?.warn('restarting the kafka consumer failed', { error }))
          })
          .catch((error) => options.log?.warn(`replacing the kafka consumer (${why}) failed; will retry`, { error }))
          .finally(() => (replacing = undefined))
        return replacing
      }
      return {
        async run(onBatch) {
          handler = onBatch
          await start(onBatch)
          if (stopped) return
          // kafkajs can wedge after a broker restart (coordinator moved, member fenced) without crashing: when no
          // fetch round, heartbeat or batch happened for a while, replace the client; uncommitted work is re-read.
          const stallMs = Math.max(20_000, (o.sessionTimeoutMs ?? 10_000) * 2)
          watchdog = setInterval(() => {
            if (stopped || replacing || Date.now() - lastSign < stallMs) return
            options.log?.warn('kafka consumer stalled; replacing it', { groupId: o.groupId, stallMs })
            void replace('stall')
          }, 2000)
        },
        async subscribe(next) {
          await replacing
          if (stopped) return
          topics = [...next]
          await replace('topics changed')
        },
        commit,
        seek: (topic, partition, offset) => current.seek({ topic, partition, offset }),
        pause: (topic, partitions) => current.pause([{ topic, partitions }]),
        resume: (topic, partitions) => current.resume([{ topic, partitions }]),
        stop: async () => {
          stopped = true
          clearInterval(watchdog)
          // kafkajs first waits for the batches in hand, then leaves the group, which needs the broker: bounded, so a
          // hung batch or an unreachable broker cannot hold a shutdown (the group drops us after the session timeout).
          const disconnect = (async () => {
            await replacing
            await current.disconnect()
          })().then(
            () => false,
            (error) => {
              options.log?.warn('kafka consumer did not stop cleanly', { groupId: o.groupId, error })
              return false
            },
          )
          let timer: ReturnType<typeof setTimeout> | undefined
          const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), STOP_MS)))
          const late = await Promise.race([disconnect, timedOut]).finally(() => clearTimeout(timer))
          if (late) options.log?.warn('kafka consumer did not stop in time; leaving it behind', { groupId: o.groupId, timeoutMs: STOP_MS })
        },
      }
    },
    async ensureTopics(topics) {
      const a = await withAdmin()
      const existing = new Set(await a.listTopics())
      const missing = topics.filter((t) => !existing.has(t.topic))
      if (missing.length > 0) {
        try {
          await a.createTopics({
            waitForLeaders: true,
            topics: missing.map((t) => ({ topic: t.topic, numPartitions: t.partitions, replicationFactor: t.replicationFactor })),
          })
        } catch (error) {
          // Another process may have created them meanwhile; only a topic still missing is an error.
          const now = new Set(await a.listTopics())
          if (missing.some((t) => !now.has(t.topic))) throw error
        }
      }
      // A topic another process has just created is listed before its partitions have leaders (the first topics of a
      // new broker: about 12 s here), and a consumer that subscribes then fails with UNKNOWN_TOPIC_OR_PARTITION.
      const names = [...new Set(topics.map((t) => t.topic))]
      if (names.length === 0) return
      for (const deadline = Date.now() + LEADERS_WAIT_MS; Date.now() < deadline; await Bun.sleep(100)) {
        const led = await a.fetchTopicMetadata({ topics: names }).then(
          ({ topics: found }) => found.length === names.length && found.every((t) => t.partitions.every((p) => p.leader >= 0 && p.partitionErrorCode === 0)),
          () => false,
        )
        if (led) return
      }
    },
    listTopics: async () => (await withAdmin()).listTopics(),
    async lag(groupId, topic) {
      const a = await withAdmin()
      const [ends, committed] = await Promise.all([a.fetchTopicOffsets(topic), a.fetchOffsets({ groupId, topics: [topic] })])
      const done = new Map((committed[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]))
      return ends.map((e) => ({ partition: e.partition, end: Number(e.high), committed: Math.max(0, done.get(e.partition) ?? 0) }))
    },
    async offsets(topic) {
      const ends = await (await withAdmin()).fetchTopicOffsets(topic)
      return ends.map((e) => ({ partition: e.partition, low: Number(e.low), high: Number(e.high) }))
    },
    async maxMessageBytes(topic) {
      const { resources } = await (await withAdmin()).describeConfigs({
        includeSynonyms: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['max.message.bytes'] }],
      })
      const value = Number(resources[0]?.configEntries.find((e) => e.configName === 'max.message.bytes')?.configValue)
      return Number.isFinite(value) && value > 0 ? value : DEFAULT_MAX_SEND_BYTES
    },
    async ping() {
      await (await withAdmin()).describeCluster()
    },
    async close() {
      await Promise.allSettled(open.map((c) => c.disconnect()))
      if (adminConnected) await admin.disconnect().catch(() => {})
    },
  }
}
