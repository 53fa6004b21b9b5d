// redrive: put dead-lettered messages back on their original topic.
import { redrive as runRedrive } from '../redrive/index.ts'
import { UsageError } from '../errors.ts'
import { intFlag, stringFlag, type Command } from './command.ts'

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
    const topic = stringFlag(ctx, 'topic')
    // Kafka's own rule for topic names: a name it could never hold matches nothing, so it is a mistake, not a filter.
    if (topic !== undefined && !/^[A-Za-z0-9._-]{1,249}$/.test(topic)) {
      throw new UsageError(`--topic: expected a Kafka topic name ([A-Za-z0-9._-], at most 249), got ${JSON.stringify(topic.slice(0, 100))}`, redrive.name)
    }
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
