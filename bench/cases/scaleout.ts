// Scaling the consumer out: one backlog on a 6-partition topic drained by 1, 2 and 3 `cdc consume` processes in one
// group, timed from the processes' start until the group committed the whole backlog, with the CPU time each process
// used. No raw baseline: the comparison is between the process counts (see the README on when scaling out helps).
import type { Subprocess } from 'bun'
import type { BenchCase, CaseResult } from '../types.ts'
import { createTestEnv, ROOT } from '../../test/support/env.ts'
import { stackConfigEnv } from '../../test/support/stack-env.ts'
import { EventHeaders } from '../../src/events.ts'
import { eventOf } from './consume.ts'
import { cpuSeconds } from '../proc.ts'

const PARTITIONS = 6
const AGGREGATES = 600
export const scaleout: BenchCase = async ({ scale, log }) => {
  const count = Math.max(2000, Math.round(20_000 * scale))
  const results: CaseResult[] = []
  for (const processes of [1, 2, 3]) {
    const env = await createTestEnv((c) => {
      c.kafka.partitions = PARTITIONS
      c.consume.tables = ['customers']
    })
    const children: Subprocess[] = []
    try {
      const kafka = env.rt.kafka()
      const topic = `${env.tag}.customers`
      await kafka.ensureTopics([topic, `${topic}.dlq`].map((t) => ({ topic: t, partitions: PARTITIONS, replicationFactor: 1 })))
      const producer = await kafka.producer()
      try {
        for (let i = 0; i < count; i += 2000) {
          const slice = Array.from({ length: Math.min(2000, count - i) }, (_, j) => eventOf(i + j, AGGREGATES, 's'))
          await producer.send(
            slice.map((e) => ({
              topic,
              key: e.aggregate.id,
              value: JSON.stringify(e),
              headers: { [EventHeaders.id]: e.id, [EventHeaders.type]: e.type, [EventHeaders.version]: String(e.version) },
            })),
          )
        }
      } finally {
        await producer.disconnect()
      }
      const t0 = performance.now()
      for (let p = 0; p < processes; p++) {
        children.push(
          Bun.spawn(['bun', 'run', 'src/cli.ts', 'consume'], {
            cwd: ROOT,
            env: {
              ...process.env,
              ...stackConfigEnv(),
              CDC_KAFKA_TOPIC_TEMPLATE: env.config.kafka.topicTemplate,
              CDC_KAFKA_CLIENT_ID: env.config.kafka.clientId,
              CDC_KAFKA_PARTITIONS: String(PARTITIONS),
              CDC_MONGO_DATABASE: env.config.mongo.database,
              CDC_CONSUME_GROUP_ID: env.config.consume.groupId,
              CDC_CONSUME_TABLES: 'customers',
              CDC_LOG_LEVEL: 'error',
            },
            stdout: 'ignore',
            stderr: 'ignore',
          }),
        )
      }
      const deadline = t0 + 300_000 * Math.max(1, scale)
      let committed = 0
      let lastLog = t0
      while (committed < count) {
        if (performance.now() > deadline) throw new Error(`${processes} process(es): ${committed} of ${count} committed when the time ran out`)
        await Bun.sleep(200)
        committed = (await kafka.lag(env.config.consume.groupId, topic)).reduce((n, p) => n + p.committed, 0)
        if (performance.now() - lastLog > 10_000) {
          lastLog = performance.now()
          log(`${processes} process(es): ${committed} of ${count} committed after ${((lastLog - t0) / 1000).toFixed(0)} s`)
        }
      }
      const seconds = (performance.now() - t0) / 1000
      const cpu = children.map((c) => cpuSeconds(c.pid))
      const perSecond = count / seconds
      log(`${processes} process(es): ${perSecond.toFixed(0)}/s, CPU per process ${cpu.map((s) => `${s.toFixed(1)} s`).join(', ')}`)
      results.push({
        name: `consume/scale-out-${processes}`,
        stage: 'scaleout',
        unit: 'event',
        ours: { perSecond, count, seconds },
        notes: `${count}-event backlog, ${AGGREGATES} aggregates, ${PARTITIONS} partitions, ${processes} cdc consume process(es) timed from their start; CPU s per process: ${cpu.map((s) => s.toFixed(1)).join(', ')} (${(cpu.reduce((a, b) => a + b, 0) / seconds).toFixed(2)} cores together)`,
      })
    } finally {
      for (const c of children) c.kill('SIGTERM')
      await Promise.all(children.map((c) => Promise.race([c.exited, Bun.sleep(15_000).then(() => c.kill('SIGKILL'))])))
      await env.cleanup()
    }
  }
  return results
}
