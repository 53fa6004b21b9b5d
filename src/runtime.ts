// What every role gets: the config, a logger and lazily opened clients, closed once in reverse order of opening.
import { connect, type Db } from './clients/postgres.ts'
import { createKafka, type KafkaClient } from './clients/kafka.ts'
import { connectMongo, healingStore, type Store } from './clients/mongo.ts'
import type { Config } from './config.ts'
import { securityOf, type Security } from './clients/security.ts'
import { log as rootLog, type Logger } from './log.ts'
import { watchTracked, type TrackedSet } from './tracked-set.ts'

export interface Runtime {
  config: Config
  log: Logger
  /** TLS and credentials per server, PEM files read (a bad path throws a ConfigError when the runtime is made). */
  security: Security
  db(): Db
  /**
   * The relay's own small pool: in `cdc all` the API's write transactions can hold every connection of the shared pool,
   * and the relay's reads and deletes would queue behind them (seconds of commit→Kafka latency under write load).
   */
  relayDb(): Db
  kafka(): KafkaClient
  /**
   * Connects on first use. Operations fail with a transient StoreError while MongoDB is unreachable, and the client
   * is replaced after such a failure (the driver under Bun does not recover by itself after a server restart).
   */
  mongo(): Promise<Store>
  /** The tracked tables as cdc.tracked says, re-read every second (one watcher per runtime). */
  tracked(): TrackedSet
  close(): Promise<void>
}

/** A long-running role (serve, relay, consume): started with a runtime, stopped gracefully. */
export interface Role {
  name: string
  stop(): Promise<void>
}

export function createRuntime(config: Config, log: Logger = rootLog): Runtime {
  let db: Db | undefined
  let relayDb: Db | undefined
  let kafka: KafkaClient | undefined
  let mongo: Store | undefined
  let tracked: TrackedSet | undefined
  const closers: (() => Promise<void>)[] = []
  const security = securityOf(config)
  const openDb = () => {
    if (!db) {
      const opened = connect({ url: config.postgres.url, ssl: security.postgres, max: config.postgres.maxConnections, name: 'cdc' })
      closers.push(() => opened.end())
      db = opened
    }
    return db
  }
  return {
    config,
    log,
    security,
    db: openDb,
    relayDb() {
      if (!relayDb) {
        // Read-ahead, delete and the stats/wake-up queries of the pipelined poll loop, plus one to spare.
        const opened = connect({ url: config.postgres.url, ssl: security.postgres, max: 4, name: 'cdc-relay' })
        closers.push(() => opened.end())
        relayDb = opened
      }
      return relayDb
    },
    kafka() {
      if (!kafka) {
        const opened = createKafka({ brokers: config.kafka.brokers, clientId: config.kafka.clientId, log, ...security.kafka })
        closers.push(() => opened.close())
        kafka = opened
      }
      return kafka
    },
    async mongo() {
      if (!mongo) {
        const opened = healingStore(() => connectMongo({ url: config.mongo.url, database: config.mongo.database, security: security.mongo }))
        closers.push(() => opened.close())
        mongo = opened
      }
      return mongo
    },
    tracked() {
      if (!tracked) {
        const opened = watchTracked(openDb, log)
        closers.push(async () => opened.stop())
        tracked = opened
      }
      return tracked
    },
    async close() {
      for (const close of closers.reverse()) await close().catch(() => {})
      closers.length = 0
    },
  }
}
