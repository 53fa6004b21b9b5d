// What the API needs from the outside (a Runtime satisfies it) and what middleware puts on each request's context.
import type { Config } from '../config.ts'
import type { Db } from '../clients/postgres.ts'
import type { KafkaClient } from '../clients/kafka.ts'
import type { Store } from '../clients/mongo.ts'
import type { Logger } from '../log.ts'
import type { DlqEntry, DlqListFilter, RedriveFilter, RedriveReport } from '../redrive/index.ts'
import type { TrackedSet } from '../tracked-set.ts'

/** The DLQ operations of src/redrive (an interface, so tests can stand in for Kafka-backed ones). */
export interface DlqAdmin {
  list(filter: DlqListFilter): Promise<{ items: DlqEntry[]; nextCursor: string | null }>
  redrive(filter: RedriveFilter): Promise<RedriveReport>
}

export interface AppDeps {
  config: Config
  log: Logger
  db(): Db
  kafka(): KafkaClient
  mongo(): Promise<Store>
  /** The live set of tracked tables (history routes, console, POST /events). */
  tracked(): TrackedSet
  dlq: DlqAdmin
}

/** What a bearer token may do (http.tokens role). */
export type AccessRole = 'read' | 'write' | 'admin'

export interface Principal {
  name: string
  role: AccessRole
}

export type AppEnv = {
  Variables: {
    requestId: string
    /** The token's owner; null when the API is open (no tokens configured). */
    principal: Principal | null
    log: Logger
    /** Aborted at the request deadline (http.requestTimeoutMs): pass it to work that can be cancelled. */
    signal: AbortSignal
  }
}
