// Configuration options owned by src/pool (merged into the single table in src/core/config.ts).
import type { OptionSpec } from '../core/config.ts'

export const POOL_OPTIONS = [
  {
    key: 'workers',
    env: 'RELAY_WORKERS',
    kind: 'int',
    default: '0',
    min: 0,
    max: 256,
    group: 'Validation workers',
    doc: 'Validation worker threads (DID shards). 0 = one per CPU core (the main thread only moves bytes and needs a fraction of a core).',
  },
  {
    key: 'workerQueueBytes',
    env: 'RELAY_WORKER_QUEUE_BYTES',
    kind: 'bytes',
    default: '4MiB',
    min: 65536,
    group: 'Validation workers',
    doc: 'Cap on frame bytes queued or in flight per worker shard. A subscriber whose shard is full pauses its socket until there is room (backpressure, never a drop).',
  },
  {
    key: 'workerBatchFrames',
    env: 'RELAY_WORKER_BATCH_FRAMES',
    kind: 'int',
    default: '256',
    min: 1,
    max: 65536,
    group: 'Validation workers',
    doc: 'Most frames per worker task. Batching amortises the per-task hand-off cost; batches are only as large as the backlog.',
  },
  {
    key: 'workerBatchBytes',
    env: 'RELAY_WORKER_BATCH_BYTES',
    kind: 'bytes',
    default: '8MiB',
    min: 65536,
    group: 'Validation workers',
    doc: 'Most frame bytes per worker task.',
  },
] as const satisfies readonly OptionSpec[]
