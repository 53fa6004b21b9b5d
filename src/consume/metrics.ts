// The consumer's Prometheus metrics (cdc_consume_*), registered once in the process-wide registry.
import { DELAY_BUCKETS, counter, gauge, histogram } from '../metrics.ts'

export const stored = counter('cdc_consume_events_stored_total', 'Events written to a history collection, by table')
export const duplicates = counter('cdc_consume_duplicates_total', 'Redelivered events recognised by id and skipped, by table')
export const deadLettered = counter('cdc_consume_dead_lettered_total', 'Messages sent to the DLQ because they failed, by topic')
export const parked = counter('cdc_consume_parked_total', 'Messages sent to the DLQ behind a failed message of their aggregate, by topic')
export const gaps = counter('cdc_consume_gaps_total', 'Version gaps detected (state held back until the missing version arrives), by table')
export const retries = counter('cdc_consume_retries_total', 'Failed batch attempts, by kind (unreachable, timeout, conflict, other)')
export const stalled = gauge('cdc_consume_stalled', '1 while a partition waits for an unreachable MongoDB or Kafka (nothing skipped), by topic and partition')
export const isolated = counter('cdc_consume_isolated_total', 'Messages dead-lettered because their batch kept failing and isolation narrowed it to them, by topic')
export const batches = counter('cdc_consume_batches_total', 'Partition batches processed and committed')
export const batchSeconds = histogram('cdc_consume_batch_seconds', 'Time to process and commit one partition batch')
export const commitToHistory = histogram(
  'cdc_consume_commit_to_history_seconds',
  "From the capturing transaction's time (occurredAt) to the event stored in the history, per event stored, by table",
  DELAY_BUCKETS,
)
export const lag = gauge('cdc_consume_lag', 'Messages not yet committed by the consumer group, by topic and partition')
export const dlqDepth = gauge('cdc_consume_dlq_depth', 'Messages in a DLQ topic that were not redriven yet, by topic')
export const openGaps = gauge('cdc_consume_open_gaps', "Version gaps this process holds open (its owned partitions' aggregates whose state waits)")
export const gapChecks = counter('cdc_consume_gap_checks_total', 'Re-checks of open version gaps, by result (waiting, moved)')
export const fenced = counter('cdc_consume_fenced_total', 'Batches dropped because another consumer had claimed their partition')
