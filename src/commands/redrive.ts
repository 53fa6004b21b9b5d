// redrive: put dead-lettered messages back on their original topic; discard: give up on an aggregate's dead head.
import { userInfo } from 'node:os'
import type { Config } from '../config.ts'
import { DiscardConflictError, DiscardNotFoundError, discard as runDiscard } from '../redrive/discard.ts'
import { redrive as runRedrive } from '../redrive/index.ts'
import { consumedTables, discoverTopics } from '../topics.ts'
import { UsageError } from '../errors.ts'
import { intFlag, stringFlag, type Command, type CommandContext } from './command.ts'

/** --topic must name a topic the consumer reads (a typo would otherwise silently match nothing). */
async function topicFlag(ctx: CommandContext, command: Command, config: Config, dlq = false): Promise<string | undefined> {
  const topic = stringFlag(ctx, 'topic')
  if (topic === undefined) return undefined
  // Kafka's own rule for topic names first: a name it could never hold is a mistake, not a filter.
  if (!/^[A-Za-z0-9._-]{1,249}$/.test(topic)) {
    throw new UsageError(`--topic: expected a Kafka topic name ([A-Za-z0-9._-], at most 249), got ${JSON.stringify(topic.slice(0, 100))}`, command.name)
  }
  const known = (await discoverTopics(config, ctx.rt.kafka(), consumedTables(config, await ctx.rt.tracked().refresh()))).map((t) => (dlq ? `${t}.dlq` : t))
  if (!known.includes(topic)) {
    throw new UsageError(`--topic: ${JSON.stringify(topic)} is not a ${dlq ? 'DLQ of a ' : ''}consumed topic (known: ${known.join(', ') || 'none'})`, command.name)
  }
  return topic
}

export const redrive: Command = {
  name: 'redrive',
  summary: 'republish DLQ messages to their original topic (filters, --dry-run, --limit)',
  options: {
    topic: { type: 'string', placeholder: 'TOPIC', description: 'only messages from this original topic' },
    aggregate: { type: 'string', placeholder: 'ID', description: 'only this aggregate id (message key)' },
    since: { type: 'string', placeholder: 'ISO', description: 'only messages dead-lettered at or after this time' },
    error: { type: 'string', placeholder: 'TEXT', description: 'only messages whose error contains this text' },
    limit: { type: 'string', placeholder: 'N', description: 'at most N messages' },
    'dry-run': { type: 'boolean', description: 'list what would be redriven, change nothing' },
  },
  async run(ctx) {
    const topic = await topicFlag(ctx, redrive, ctx.rt.config)
    const since = stringFlag(ctx, 'since')
    if (since !== undefined && Number.isNaN(Date.parse(since))) {
      throw new UsageError(`--since: expected an ISO-8601 time, got ${JSON.stringify(since)}`, redrive.name)
    }
    const report = await runRedrive(ctx.rt, {
      topic,
      aggregate: stringFlag(ctx, 'aggregate'),
      since: since === undefined ? undefined : new Date(since),
      error: stringFlag(ctx, 'error'),
      limit: intFlag(ctx, 'limit', redrive),
      dryRun: ctx.values['dry-run'] === true,
    })
    console.log(JSON.stringify(report, null, 2))
    return 0
  },
}

export const discard: Command = {
  name: 'discard',
  summary: "give up on an aggregate's dead head (audited, with --reason); its parked followers are released",
  usage: '--topic DLQ_TOPIC --partition N --offset N --reason TEXT [--actor NAME]',
  options: {
    topic: { type: 'string', placeholder: 'DLQ_TOPIC', description: 'the DLQ topic of the entry (as `GET /dlq` lists it, e.g. cdc.customers.dlq)' },
    partition: { type: 'string', placeholder: 'N', description: 'its partition in the DLQ topic' },
    offset: { type: 'string', placeholder: 'N', description: 'its offset in the DLQ topic' },
    reason: { type: 'string', placeholder: 'TEXT', description: "why (kept in the outcome log and the aggregate's history)" },
    actor: { type: 'string', placeholder: 'NAME', description: 'who discards it (default: cli:<OS user>)' },
  },
  async run(ctx) {
    const topic = await topicFlag(ctx, discard, ctx.rt.config, true)
    if (topic === undefined) throw new UsageError('--topic: required', discard.name)
    const partition = intFlag(ctx, 'partition', discard, 0)
    if (partition === undefined) throw new UsageError('--partition: required', discard.name)
    const offset = intFlag(ctx, 'offset', discard, 0)
    if (offset === undefined) throw new UsageError('--offset: required', discard.name)
    const reason = stringFlag(ctx, 'reason')?.trim()
    if (!reason) throw new UsageError('--reason: required (why this message is given up)', discard.name)
    const actor = stringFlag(ctx, 'actor')?.trim() || `cli:${userInfo().username}`
    try {
      const report = await runDiscard(ctx.rt, { topic, partition, offset: String(offset), reason: reason.slice(0, 2000), actor: actor.slice(0, 200) })
      console.log(JSON.stringify(report, null, 2))
      return 0
    } catch (error) {
      // Not the head, already handled, or no such entry: the admin's answer, not a crash.
      if (!(error instanceof DiscardConflictError || error instanceof DiscardNotFoundError)) throw error
      console.error(`cdc discard: ${error.message}`)
      return 1
    }
  },
}
