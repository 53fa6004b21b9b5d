// The consumer's Prometheus metrics (cdc_consume_*), registered once in the process-wide registry.
import { counter, gauge, histogram } from '../metrics.ts'

export const stored = counter('cdc_consume_events_stored_total', 'Events written to a history collection, by table')
export const duplicates = counter('cdc_consume_duplicates_total', 'Redelivered events recognised by id and skipped, by table')
export const deadLettered = counter('cdc_consume_dead_lettered_total', 'Messages sent to the DLQ because they failed, by topic')
export const parked = counter('cdc_consume_parked_total', 'Messages sent to the DLQ behind a failed message of their aggregate, by topic')
export const gaps = counter('cdc_consume_gaps_total', 'Version gaps detected (state held back until the missing version arrives), by table')
export const retries = counter('cdc_consume_retries_total', 'Failed batch attempts, by kind (unreachable, timeout, other)')
export const stalled = gauge('cdc_consume_stalled', '1 while a partition waits for an unreachable MongoDB or Kafka (nothing skipped), by topic and partition')
export const isolated = counter('cdc_consume_isolated_total', 'Messages dead-lettered because their batch kept failing and isolation narrowed it to them, by topic')
export const batches = counter('cdc_consume_batches_total', 'Partition batches processed and committed')
export const batchSeconds = histogram('cdc_consume_batch_seconds', 'Time to process and commit one partition batch')
export const lag = gauge('cdc_consume_lag', 'Messages not yet committed by the consumer group, by topic and partition')
export const dlqDepth = gauge('cdc_consume_dlq_depth', 'Messages in a DLQ topic that were not redriven yet, by topic')
