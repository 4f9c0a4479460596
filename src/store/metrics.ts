// Metrics of the event log. One instance per registry; a store created without a registry gets a
// private one so tests and benchmarks can run several side by side.

import { Counter, Gauge, Histogram, Registry } from 'prom-client'

export interface SequencerMetricSources {
  pendingEvents(): number
  pendingBytes(): number
  roomWaiters(): number
  headSeq(): number
}

export class SequencerMetrics {
  readonly persisted: Counter<'kind'>
  readonly batchEvents: Histogram
  readonly batchBytes: Histogram
  readonly commitSeconds: Histogram
  readonly persistLatencySeconds: Histogram
  readonly retries: Counter
  readonly errors: Counter<'op'>
  readonly rejected: Counter<'reason'>
  readonly overCapacity: Counter
  readonly repoStateSkipped: Counter
  readonly hostCursorWrites: Counter
  readonly callbackErrors: Counter<'callback'>

  constructor(registry: Registry, src: SequencerMetricSources) {
    const registers = [registry]
    this.persisted = new Counter({
      name: 'relay_store_events_persisted_total',
      help: 'Events committed to the event log',
      labelNames: ['kind'],
      registers,
    })
    this.batchEvents = new Histogram({
      name: 'relay_store_batch_events',
      help: 'Events per committed batch',
      registers,
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
    })
    this.batchBytes = new Histogram({
      name: 'relay_store_batch_bytes',
      help: 'Frame bytes per committed batch',
      registers,
      buckets: [1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24],
    })
    this.commitSeconds = new Histogram({
      name: 'relay_store_commit_seconds',
      help: 'Time of one successful batch transaction (BEGIN to COMMIT acknowledged)',
      registers,
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    })
    this.persistLatencySeconds = new Histogram({
      name: 'relay_store_persist_latency_seconds',
      help: 'Time from submit() to commit, per batch (oldest event in it)',
      registers,
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
    })
    this.retries = new Counter({
      name: 'relay_store_batch_retries_total',
      help: 'Batch transactions retried after a database error',
      registers,
    })
    this.errors = new Counter({
      name: 'relay_store_errors_total',
      help: 'Database errors in the event log, by operation',
      labelNames: ['op'],
      registers,
    })
    this.rejected = new Counter({
      name: 'relay_store_events_rejected_total',
      help: 'Events refused by submit() before queueing (malformed input from the caller), by reason',
      labelNames: ['reason'],
      registers,
    })
    this.overCapacity = new Counter({
      name: 'relay_store_over_capacity_total',
      help: 'Events submitted while the sequencer was over its pending limit (the caller did not wait for room)',
      registers,
    })
    this.repoStateSkipped = new Counter({
      name: 'relay_store_repo_state_skipped_total',
      help: 'Repo-state updates not applied (stored rev is newer, or no account row)',
      registers,
    })
    this.hostCursorWrites = new Counter({
      name: 'relay_store_host_cursor_writes_total',
      help: 'Upstream host cursors advanced in the database',
      registers,
    })
    this.callbackErrors = new Counter({
      name: 'relay_store_callback_errors_total',
      help: 'Exceptions thrown by sequencer callbacks (cursor provider, onPersisted, onCommitted)',
      labelNames: ['callback'],
      registers,
    })
    new Gauge({
      name: 'relay_store_pending_events',
      help: 'Events submitted and not yet committed',
      registers,
      collect() {
        this.set(src.pendingEvents())
      },
    })
    new Gauge({
      name: 'relay_store_pending_bytes',
      help: 'Frame bytes submitted and not yet committed',
      registers,
      collect() {
        this.set(src.pendingBytes())
      },
    })
    new Gauge({
      name: 'relay_store_room_waiters',
      help: 'Submitters (one per upstream host at most) waiting for room under the pending limits',
      registers,
      collect() {
        this.set(src.roomWaiters())
      },
    })
    new Gauge({
      name: 'relay_store_seq',
      help: 'Highest relay seq committed',
      registers,
      collect() {
        this.set(src.headSeq())
      },
    })
  }
}

export class EventLogMetrics {
  readonly pruned: Counter
  readonly hidden: Counter
  readonly errors: Counter<'op'>
  readonly pruneSeconds: Histogram

  constructor(registry: Registry) {
    const registers = [registry]
    this.pruned = new Counter({ name: 'relay_store_pruned_events_total', help: 'Events deleted by retention', registers })
    this.hidden = new Counter({
      name: 'relay_store_hidden_events_total',
      help: 'Events deleted from replay by account takedowns',
      registers,
    })
    this.errors = new Counter({
      name: 'relay_store_log_errors_total',
      help: 'Event-log maintenance errors, by operation',
      labelNames: ['op'],
      registers,
    })
    this.pruneSeconds = new Histogram({
      name: 'relay_store_prune_seconds',
      help: 'Duration of one retention pass',
      registers,
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
    })
  }
}
