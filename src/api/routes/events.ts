// Application-level events over HTTP (POST /events → cdc.emit, write role) and "what happened to this event?"
// (GET /events/:id/outcome, read role: the processing-outcome log plus the history document itself).
import { Hono } from 'hono'
import emitSql from '../../../sql/api/events-emit.sql' with { type: 'text' }
import versionSql from '../../../sql/api/events-version.sql' with { type: 'text' }
import knownSql from '../../../sql/api/events-aggregate-known.sql' with { type: 'text' }
import appliedSql from '../../../sql/api/events-applied.sql' with { type: 'text' }
import currentTxSql from '../../../sql/api/current-tx.sql' with { type: 'text' }
import type { Doc } from '../../clients/mongo.ts'
import { historyCollection, type HistoryDoc } from '../../consume/history.ts'
import { outcomesOf, type OutcomeDoc, type OutcomeKind } from '../../consume/outcomes.ts'
import { consumedTables } from '../../topics.ts'
import { EventCreate, EventIdParam } from '../schemas.ts'
import { jsonBody, params } from '../middleware/validate.ts'
import { ApiError } from '../problem.ts'
import { inWriteTransaction } from '../write.ts'
import type { AppDeps, AppEnv } from '../env.ts'

/** Logical mode: how long POST /events waits for the relay to append the event (its version is assigned there). */
const APPLIED_WITHIN_MS = 10_000

/** Outcomes of one batch share their `at`: a state rejection follows the store of the same message. */
const RANK: Record<OutcomeKind, number> = { discarded: 0, redriven: 0, stored: 1, duplicate: 1, parked: 2, 'dead-lettered': 3 }

function toOutcome({ _id, eventId, ...outcome }: OutcomeDoc) {
  return outcome
}

export function eventRoutes(deps: AppDeps) {
  const maxPayload = deps.config.http.maxEventPayloadBytes
  const logical = deps.config.capture.mode === 'logical'

  /** Logical mode: the event's id and version once the relay has applied the writer's transaction, or null. */
  const applied = async (tx: string, aggregate: { type: string; id: string }, type: string) => {
    const deadline = Date.now() + APPLIED_WITHIN_MS
    for (let pause = 5; ; pause = Math.min(pause * 2, 200)) {
      const [row] = await deps.db().query<{ id: string; version: number }>(appliedSql, [aggregate.type, aggregate.id, tx, type])
      if (row || Date.now() > deadline) return row ?? null
      await Bun.sleep(pause)
    }
  }

  return new Hono<AppEnv>()
    .post('/events', jsonBody(EventCreate), async (c) => {
      const b = c.req.valid('json')
      // The exact canonical name (the envelope's aggregate type): a write does not guess at spellings.
      const type = b.aggregate.type
      const resolved = deps.tracked().get(type) ?? (await deps.tracked().refresh()).find((t) => t.aggregateType === type)
      // Only aggregate types whose topic the consumer reads: an accepted event must be able to reach a history.
      const consumed = consumedTables(deps.config, deps.tracked().list())
      if (!consumed.includes(type)) {
        throw new ApiError(400, 'validation', 'unknown aggregate type', [
          { path: 'aggregate.type', message: `not a consumed table (one of: ${consumed.join(', ')})` },
        ])
      }
      const payload = JSON.stringify(b.data)
      const bytes = Buffer.byteLength(payload)
      if (bytes > maxPayload) {
        throw new ApiError(413, 'too-large', `data is ${bytes} bytes; at most ${maxPayload} (http.maxEventPayloadBytes)`, [
          { path: 'data', message: `at most ${maxPayload} bytes of JSON` },
        ])
      }
      const created = await inWriteTransaction(deps, c, async (tx) => {
        if (resolved) {
          const [row] = await tx.query<{ known: boolean }>(knownSql, [type, b.aggregate.id])
          if (!row?.known) return null
        }
        const [emitted] = await tx.query<{ id: string }>(emitSql, [type, b.aggregate.id, b.type, payload])
        // logical mode: the relay appends it after the commit (below)
        if (logical) return { pending: (await tx.query<{ tx: string }>(currentTxSql))[0]!.tx }
        const [stored] = await tx.query<{ version: number }>(versionSql, [emitted!.id])
        return { id: emitted!.id, aggregate: { type, id: b.aggregate.id }, version: stored!.version, type: b.type }
      })
      if (!created) throw new ApiError(404, 'not-found', `${b.aggregate.type} ${b.aggregate.id} has no history (it never existed)`)
      if (created.pending !== undefined) {
        const got = await applied(created.pending, { type, id: b.aggregate.id }, b.type)
        // committed either way: 202 when the relay has not appended it yet (it will; its id and version come then)
        if (!got) return c.json({ id: null, aggregate: b.aggregate, version: null, type: b.type }, 202)
        c.get('log').info('event emitted', { eventId: got.id, type: b.type, aggregate: b.aggregate, version: got.version })
        return c.json({ id: got.id, aggregate: b.aggregate, version: got.version, type: b.type }, 201, { Location: `/events/${got.id}/outcome` })
      }
      c.get('log').info('event emitted', { eventId: created.id, type: created.type, aggregate: created.aggregate, version: created.version })
      return c.json(created, 201, { Location: `/events/${created.id}/outcome` })
    })
    .get('/events/:id/outcome', params(EventIdParam), async (c) => {
      const { id } = c.req.valid('param')
      const store = await deps.mongo()
      const [logged, ...found] = await Promise.all([
        outcomesOf(store, id),
        ...consumedTables(deps.config, deps.tracked().list()).map((t) => store.collection<HistoryDoc & Doc>(historyCollection(t)).findOne({ _id: id })),
      ])
      const outcomes = logged.map(toOutcome)
      // With consume.outcomes = "failures" a plain store is not logged: the history document says it.
      const doc = found.find((d) => d !== null)
      if (doc && !outcomes.some((o) => o.outcome === 'stored')) {
        outcomes.push({ outcome: 'stored', at: doc.storedAt, topic: doc.kafka.topic, partition: doc.kafka.partition, offset: String(doc.kafka.offset) })
      }
      if (outcomes.length === 0) throw new ApiError(404, 'not-found', `no outcome recorded for event ${id} and it is not in any history`)
      outcomes.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : RANK[a.outcome] - RANK[b.outcome]))
      return c.json({ eventId: id, outcomes })
    })
}
