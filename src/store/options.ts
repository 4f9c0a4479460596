// Configuration options owned by src/store (merged into the single table in src/core/config.ts).
import type { OptionSpec } from '../core/config.ts'

export const STORE_OPTIONS = [
  { key: 'initialSeq', env: 'RELAY_INITIAL_SEQ', kind: 'int', default: '1', min: 1, max: Number.MAX_SAFE_INTEGER, group: 'Event log',
    doc: 'Floor for the relay seq: the next event gets at least this seq. Raise it when replacing a relay so consumers\' cursors stay valid (pick a healthy margin above the old seq).' },
  { key: 'replayWindow', env: 'RELAY_REPLAY_WINDOW', kind: 'duration', default: '72h', min: 60_000, group: 'Event log',
    doc: 'How long events stay in the log for cursor replay. Older events are pruned in small batches; a consumer cursor older than this gets `#info OutdatedCursor`.' },
  { key: 'pruneInterval', env: 'RELAY_PRUNE_INTERVAL', kind: 'duration', default: '60s', min: 1000, group: 'Event log',
    doc: 'How often retention pruning runs.' },
  { key: 'persistBatchEvents', env: 'RELAY_PERSIST_BATCH_EVENTS', kind: 'int', default: '1000', min: 1, max: 16000, group: 'Event log',
    doc: 'Most events per group-commit transaction. Larger batches raise throughput (one WAL flush per batch) at the cost of latency under load.' },
  { key: 'persistBatchDelay', env: 'RELAY_PERSIST_BATCH_DELAY', kind: 'duration', default: '5ms', min: 0, group: 'Event log',
    doc: 'Longest an accepted event waits for more events before its batch is committed. Under load batches fill faster than this.' },
  { key: 'persistMaxPendingBytes', env: 'RELAY_PERSIST_MAX_PENDING_BYTES', kind: 'bytes', default: '64MiB', min: 1048576, group: 'Event log',
    doc: 'Cap on accepted-but-not-yet-committed event bytes. When reached (e.g. Postgres is slow or down) subscribers pause their sockets until commits catch up.' },
] as const satisfies readonly OptionSpec[]
