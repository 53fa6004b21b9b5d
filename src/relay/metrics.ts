// The relay's Prometheus series (process-wide registry, so `cdc all` shows them on /metrics).
import { DELAY_BUCKETS, counter, gauge, histogram } from '../metrics.ts'

export const relayMetrics = {
  leader: gauge('cdc_relay_leader', 'Whether this process is the active relay (1) or a standby (0)'),
  published: counter('cdc_relay_published_total', 'Events published to Kafka (committed Kafka transactions)'),
  batches: counter('cdc_relay_batches_total', 'Kafka transactions committed by the relay'),
  errors: counter('cdc_relay_errors_total', 'Relay failures by stage (each is retried with backoff)'),
  backlog: gauge('cdc_relay_backlog_events', 'Events captured but not yet published (poll: outbox rows; wal: received, unpublished)'),
  lag: gauge('cdc_relay_lag_seconds', 'Age of the oldest unpublished event (0 when nothing is pending)'),
  slotLagBytes: gauge('cdc_relay_slot_lag_bytes', 'WAL retained by the replication slot: current WAL position minus its confirmed position (wal and logical modes)'),
  slotActive: gauge('cdc_relay_slot_active', 'Whether a walsender is streaming from the replication slot (wal mode)'),
  slotRetainedBytes: gauge('cdc_relay_slot_retained_bytes', 'WAL bytes the server keeps for the slot (logical mode)'),
  slotConfirmedLsn: gauge('cdc_relay_slot_confirmed_lsn', 'Confirmed flush position of the slot, as a byte offset (logical mode)'),
  slotLost: gauge('cdc_relay_slot_lost', 'The slot was dropped or invalidated: the relay stopped until recovery (1) (logical mode)'),
  batchSeconds: histogram('cdc_relay_batch_seconds', 'Time to publish and commit one Kafka transaction'),
  commitToKafka: histogram(
    'cdc_relay_commit_to_kafka_seconds',
    "From a source transaction's commit to its events committed in Kafka, per source transaction (wal and logical modes)",
    DELAY_BUCKETS,
  ),
}
